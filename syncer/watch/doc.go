// Package watch detects changes in the public multi-datacenter Consul with
// a number of connections that does not grow with the catalog. Per public
// datacenter it keeps three long blocking reads, each diffed against its
// previous answer:
//
//   - /v1/health/state/critical and /v1/health/state/warning (warning only
//     with only_passing): the failing checks. Consul wakes such a read
//     only for checks of that state (its watch is on that part of the
//     status index), and an answer holds only failing checks, so the cost
//     of a status change does not grow with the catalog;
//   - /v1/catalog/services (names and tags). Its index moves on every
//     registration change; each time it does, the whole check list
//     (/v1/health/state/any) is read once, plainly, to learn which services
//     gained or lost instances. That list is the expensive one, so it is
//     read only then, and paced (Options.ListShare).
//
// A Detector emits an Event naming the services of a datacenter that may
// answer differently. It says nothing about what the new answer is: the
// controller re-executes its prepared queries for those services and
// reconciles (level-based), so an event that is duplicated costs one
// reconcile and nothing else. An Event with Resync set means events may have
// been missed (first list of a loop, a recovered error, an index that went
// backwards, a datacenter that left): the controller then reconciles every
// gateway that depends on that datacenter.
//
// What it cannot see (the scheduled full reconcile stays the safety net):
// a re-registration that changes only a port, address, tags of one
// instance or meta (it moves the catalog index but no list's content),
// instances without health checks (they have no check to change; one
// registered before its check is first seen when the check is), a node-level
// check change for services without checks on that node, and nearest_n
// failover order that drifts with round-trip times.
//
// The measurements behind the choice, against the alternatives, are in
// measure_test.go and the project's design notes.
package watch
