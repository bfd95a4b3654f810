// Package bench is gwsync's benchmark harness: eight scenarios run against
// real Consul servers on loopback (a WAN-federated public Consul of three
// DCs behind a counting proxy and a byte meter, dedicated clusters, gwsync
// in process or as a `gwsync run` subprocess), each measuring gwsync next
// to its comparison in the same run:
//
//  1. public requests vs gateway nodes, against the old design;
//  2. Raft entries per steady cycle, against a naive syncer;
//  3. propagation of a public change through the event path, from the
//     source DC and from a failover DC, against a raw blocking query;
//  4. scale: initial mirror, memory, steady cycle and allocations up to
//     10,000 services × 10 for 4 gateways, against raw txn throughput;
//  5. the resolver: connections and lookups at 2,000 services, change
//     latency, a flood of unknown names, a hung and a killed local cluster;
//  6. a slow WAN: what stays bounded;
//  7. steady public load with nothing changing, against full reconciles
//     every 15 s;
//  8. churn: lag, executions per change, and mirrors that agree with a
//     direct execute afterwards.
//
// Every scenario is a function of a Sizes value: `make bench` runs the
// full sizes through BenchmarkGwsync, writes the markdown document to
// docs/benchmarks.md and a chart file that the test/bench/charts module
// turns into one SVG per chart beside it; TestBench_Smoke runs the same
// code with tiny sizes so the harness cannot rot. Figures are measured,
// never filled in; a missed target is said, with by how much, in the
// notes. Every Consul runs with its default limits: simulated gateway
// nodes connect from loopback addresses of their own, as real nodes do.
package bench
