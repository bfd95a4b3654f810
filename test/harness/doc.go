// Package harness starts real Consul servers for gwsync's end-to-end tests
// and benchmarks: one-server clusters ("dedicated" clusters), WAN-federated
// multi-DC "public" clusters, helpers to register external instances, a
// counting and delaying HTTP proxy to put in front of a server, and a
// poll-until-deadline helper.
//
// Servers are real `consul agent -dev` processes (Consul 1.21.0 built into
// bin/consul by `make consul`), each a single bootstrapping server with its
// data in memory, so a restart always comes back empty, exactly as a
// restarted dev server does. The harness manages the processes itself with
// os/exec rather than through sdk/testutil: testutil's readiness wait sleeps
// a fixed two seconds per start, stops with SIGINT, and cannot restart a
// server on the ports it had. Ports come from sdk/freeport, which keeps
// parallel test binaries from colliding.
//
// WithACL (default-deny ACLs, a management token, token replication in a
// federation) and WithTLS (HTTPS only, certificates from the Consul
// binary's own `consul tls` commands, verify_incoming everywhere) secure a
// server or a federation (StartFederationWith) the way production runs;
// the harness's own helpers keep working on a secured server.
//
// Every server is killed through t.Cleanup; if the test failed, the tail of
// each server's log is written to the test log.
package harness
