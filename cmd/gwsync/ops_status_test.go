package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gwsync/gwsync/syncer/admin"
)

// TestPrintStatus: a replica that writes one of three gateways: its own
// row in full, another replica's gateway and one nobody holds; a problem;
// public DCs with a backoff and the change feed.
func TestPrintStatus(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	retry := now.Add(12 * time.Second)
	st := admin.StatusResponse{Ready: true, Replica: "r1", Role: admin.RoleMixed,
		Gateways: []admin.GatewayStatus{
			{Name: "gw1", SourceDatacenter: "dc1", Synced: true, Vouching: true, Owned: true, Generation: 7, Services: 3, Covered: 4,
				Instances: 9, Problems: 2, LastProblem: "web/web-9: name not addressable", LastSuccess: now.Add(-5 * time.Second),
				Owner: &admin.Owner{Replica: "r1", Address: "10.0.0.1:9310"}, Selection: admin.Selection{Include: []string{"web", "api*"}, Exclude: []string{"consul"}}},
			{Name: "gw2", SourceDatacenter: "dc2", Owner: &admin.Owner{Replica: "r2", Address: "10.0.0.2:9310"}, Generation: 3},
			{Name: "gw3", SourceDatacenter: "dc2"},
		},
		Datacenters: []admin.DCHealth{
			{Datacenter: "dc1", LastOK: now.Add(-time.Second), Events: &admin.DCEvents{Watching: true}},
			{Datacenter: "dc2", LastOK: now.Add(-time.Minute), Failures: 3, LastError: "connection\nrefused", LastErrAt: now.Add(-2 * time.Second),
				RetryAt: retry, Events: &admin.DCEvents{Loops: []admin.EventLoop{
					{Loop: "health", State: "backoff", ConsecutiveFailures: 3}, {Loop: "catalog", State: "watching"}}}},
			{Datacenter: "dc3", RetryAt: now.Add(-time.Second)},
		}}
	var b bytes.Buffer
	printStatus(&b, st, now)
	want := `ready: yes
replica: r1 (mixed: writes 1 of 3 gateways)

GATEWAY  SOURCE DC  OWNER                    SYNCED  VOUCHING  GENERATION  SERVICES  COVERED  INSTANCES  PROBLEMS  DELETES HELD  LAST SUCCESS  LAST ERROR
gw1      dc1        this replica             yes     yes       7           3         4        9          2         0             5s ago        -
gw2      dc2        r2 at 10.0.0.2:9310      -       -         -           -         -        -          -         -             -             -
gw3      dc2        none (takeover pending)  -       -         -           -         -        -          -         -             -             -
gw1 selects: include [web api*], exclude [consul]
gw1: 2 instances could not be mirrored in the last full sync, e.g. web/web-9: name not addressable

PUBLIC DC  LAST OK   FAILURES  BACKING OFF UNTIL  EVENTS                                         LAST ERROR
dc1        1s ago    0         -                  watching                                       -
dc2        1m0s ago  3         ` + retry.Local().Format("15:04:05") + ` (in 12s)  health backoff (3 failures), catalog watching  2s ago: connection refused
dc3        never     0         -                  -                                              -
`
	if got := b.String(); got != want {
		t.Fatalf("status output:\n%s\nwant:\n%s", got, want)
	}
}

// TestPrintStatus_SingleReplica: without replicas there is no replica
// line and no EVENTS column without the event path.
func TestPrintStatus_SingleReplica(t *testing.T) {
	now := time.Now()
	st := admin.StatusResponse{Ready: false, Role: admin.RoleOwner,
		Gateways:    []admin.GatewayStatus{{Name: "gw1", SourceDatacenter: "dc1", Owned: true}},
		Datacenters: []admin.DCHealth{{Datacenter: "dc1"}}}
	var b bytes.Buffer
	printStatus(&b, st, now)
	out := b.String()
	if strings.Contains(out, "replica:") || strings.Contains(out, "EVENTS") || !strings.HasPrefix(out, "ready: no (") {
		t.Fatalf("status output:\n%s", out)
	}
}

// TestPrintStatus_LongErrorInFull: an error longer than its cell is cut
// in the table and printed in full under it (the end of a Consul ACL
// error, "lacks permission ...", was cut off), multi-byte text included.
func TestPrintStatus_LongErrorInFull(t *testing.T) {
	now := time.Now()
	long := "txn rejected: Permission denied: token with AccessorID 'a3f0' lacks permission 'node:write' on \"gwsync-gw1-é\""
	st := admin.StatusResponse{Ready: true, Role: admin.RoleOwner,
		Gateways:    []admin.GatewayStatus{{Name: "gw1", SourceDatacenter: "dc1", Owned: true, LastError: long, LastErrorAt: now}},
		Datacenters: []admin.DCHealth{{Datacenter: "dc1", LastError: "short", LastErrAt: now}}}
	var b bytes.Buffer
	printStatus(&b, st, now)
	out := b.String()
	if !strings.Contains(out, "gw1 last error: "+long+"\n") {
		t.Fatalf("the full error is missing:\n%s", out)
	}
	if strings.Contains(out, "dc1 last error:") {
		t.Fatalf("an error that fits its cell is printed twice:\n%s", out)
	}
	if !strings.Contains(out, "…") {
		t.Fatalf("the table cell is not cut:\n%s", out)
	}
}
