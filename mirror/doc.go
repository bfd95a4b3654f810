// Package mirror is the contract between gwsync's controller (the only
// writer of a dedicated Consul cluster) and every reader of one (the
// resolver library, non-Go gateways through the local prepared query, and
// the tests). It owns, in one place:
//
//   - naming: mirrored node names, the node/KV/query prefixes, the meta keys
//     that mark an entry as gwsync's and record where it came from;
//   - the model: Node and Service in canonical form, so a value read back
//     from Consul compares equal to what was written (Consul rewrites, and
//     bumps the index of, anything that is not deeply equal);
//   - encoding: a public prepared-query answer (Endpoint) to the entries
//     gwsync writes (Encoder), and those entries back to what a gateway
//     serves (Instance);
//   - the per-gateway records in the dedicated cluster's KV store: the sync
//     marker (a complete mirror, vouched for by a live controller), the
//     change feed (which services the last writes touched), the coverage
//     (which services the mirror is authoritative for) and the writer's
//     lock; and the timing defaults that link them;
//   - the local prepared-query template that serves the mirror to gateways
//     that execute prepared queries (HTTP or DNS).
//
// The controller (package syncer) and the resolver (package gateway) both
// import this package; gateway never imports syncer.
package mirror
