// Package watch detects changes in the public multi-datacenter Consul with
// a number of connections that does not grow with the catalog: per public
// datacenter, two long blocking queries, /v1/health/state/any (every check
// with its status) and /v1/catalog/services (every service name with its
// tags), each diffed against its previous answer.
//
// A Detector emits an Event naming the services of a datacenter whose
// check set or check status changed, or whose tags changed, or that
// appeared or vanished. It says nothing about what the new answer is: the
// controller re-executes its prepared queries for those services and
// reconciles (level-based), so an event that is duplicated costs one
// reconcile and nothing else. An Event with Resync set means events may have
// been missed (first list of a loop, a recovered error, an index that went
// backwards, a datacenter that left): the controller then reconciles every
// gateway that depends on that datacenter.
//
// What it cannot see (the scheduled full reconcile stays the safety net):
// a re-registration that changes only a port, address or meta (it moves the
// catalog index but neither list's content), instances without health
// checks (they have no check to change), a node-level check change for
// services without checks on that node, and nearest_n failover order that
// drifts with round-trip times.
//
// Costs, defaults and the measurements behind the choice are documented on
// Options and in measure_test.go.
package watch
