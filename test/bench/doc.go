// Package bench is gwsync's benchmark harness: six scenarios run against
// real Consul servers on loopback (a WAN-federated public Consul of three
// DCs, dedicated clusters, a counting and delaying proxy in front of the
// public side), each measuring gwsync and its comparison in the same run.
//
// Every scenario is a function of a Sizes value: `make bench` runs the
// full sizes through BenchmarkGwsync and writes the markdown table to
// docs/benchmarks.md; TestBench_Smoke runs the same code with tiny sizes
// so the harness cannot rot. Figures are measured, never filled in: a
// figure that could not be measured is reported as such in its note.
package bench
