package watch

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Helpers of measure_test.go.

// catalogShape is a synthetic public catalog shaped like agent-registered
// services: every node runs perService instances of distinct services and
// has a node-level check; every instance has one service check with an HTTP
// check's output.
type catalogShape struct {
	services, perService int
}

func (c catalogShape) nodes() int             { return c.services } // perService instances per node
func serviceName(s int) string                { return fmt.Sprintf("svc-%05d", s) }
func nodeName(n int) string                   { return fmt.Sprintf("node-%05d", n) }
func instanceID(s, n int) string              { return fmt.Sprintf("%s-%d", serviceName(s), n) }
func nodeAddr(n int) string                   { return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255) }
func (c catalogShape) serviceOf(n, k int) int { return (n + k) % c.services }

// instanceCheck is the service check of service s on node n.
func instanceCheck(s, n int, status string) api.HealthCheck {
	id := instanceID(s, n)
	return api.HealthCheck{
		Node: nodeName(n), CheckID: "service:" + id, Name: "Service '" + serviceName(s) + "' check",
		Status: status, ServiceID: id, ServiceName: serviceName(s), Type: "http",
		Output: fmt.Sprintf("HTTP GET http://%s:8080/health: 200 OK Output: {\"status\":\"UP\"}", nodeAddr(n)),
	}
}

// nodeOps registers node n with its serfHealth check and its instances.
func (c catalogShape) nodeOps(n int) api.TxnOps {
	ops := api.TxnOps{
		{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: nodeName(n), Address: nodeAddr(n), Meta: map[string]string{"rack": "r" + strconv.Itoa(n%40)}}}},
		// A node-level check as agents have (not named serfHealth: the
		// leader reaps nodes with a serfHealth check that are not gossip
		// members).
		{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{Node: nodeName(n), CheckID: "node-alive", Name: "Node alive", Status: api.HealthPassing, Output: "Agent alive and reachable", Type: "ttl"}}},
	}
	for k := range c.perService {
		s := c.serviceOf(n, k)
		ops = append(ops,
			&api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: nodeName(n), Service: api.AgentService{
				ID: instanceID(s, n), Service: serviceName(s), Port: 8080, Tags: []string{"http", "v1", "team-" + strconv.Itoa(s%50)},
				Meta: map[string]string{"version": "1.4." + strconv.Itoa(s%10)}, Weights: api.AgentWeights{Passing: 1, Warning: 1},
			}}},
			&api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: instanceCheck(s, n, api.HealthPassing)}},
		)
	}
	return ops
}

// register writes the catalog through /v1/txn, at most 128 ops a txn, on
// four writers.
func (c catalogShape) register(t testing.TB, client *api.Client) {
	t.Helper()
	perTxn := max(1, 128/len(c.nodeOps(0)))
	var batches [][]int
	for n := 0; n < c.nodes(); n += perTxn {
		var b []int
		for i := n; i < min(n+perTxn, c.nodes()); i++ {
			b = append(b, i)
		}
		batches = append(batches, b)
	}
	work := make(chan []int)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for b := range work {
				var ops api.TxnOps
				for _, n := range b {
					ops = append(ops, c.nodeOps(n)...)
				}
				if err := txn(client, ops); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for _, b := range batches {
		select {
		case work <- b:
		case err := <-errs:
			close(work)
			t.Fatalf("register: %v", err)
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("register: %v", err)
	default:
	}
}

func txn(client *api.Client, ops api.TxnOps) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, resp, _, err := client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	if !ok {
		var why []string
		for _, e := range resp.Errors {
			why = append(why, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
		}
		return fmt.Errorf("txn rolled back: %s", strings.Join(why, "; "))
	}
	return nil
}

// connCounter counts a client's connections and the bytes they carry
// (headers included: what crossed the wire).
type connCounter struct {
	dials, open, maxOpen, read, written atomic.Int64
}

func (cc *connCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc.dials.Add(1)
	o := cc.open.Add(1)
	for m := cc.maxOpen.Load(); o > m && !cc.maxOpen.CompareAndSwap(m, o); m = cc.maxOpen.Load() {
	}
	return &countedConn{Conn: c, cc: cc}, nil
}

// resetMax restarts the peak from the connections open now.
func (cc *connCounter) resetMax() { cc.maxOpen.Store(cc.open.Load()) }

type countedConn struct {
	net.Conn
	cc     *connCounter
	closed atomic.Bool
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.cc.read.Add(int64(n))
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.cc.written.Add(int64(n))
	return n, err
}

func (c *countedConn) Close() error {
	if !c.closed.Swap(true) {
		c.cc.open.Add(-1)
	}
	return c.Conn.Close()
}

// measuredClient is a Consul client whose connections and bodies are
// counted; maxConns 0 means unlimited. Its idle connections are closed when
// the test ends.
func measuredClient(t testing.TB, addr string, maxConns int) (*api.Client, *CountingTransport, *connCounter) {
	t.Helper()
	cc := &connCounter{}
	tr := &http.Transport{
		Proxy: nil, DialContext: cc.dial, MaxConnsPerHost: maxConns, MaxIdleConnsPerHost: max(maxConns, 10000), IdleConnTimeout: 90 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	ct := NewCountingTransport(tr)
	c, err := api.NewClient(&api.Config{Address: addr, Scheme: "http", HttpClient: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatal(err)
	}
	return c, ct, cc
}

// consulCPU returns the CPU time used so far by the consul process
// serving HTTP on port (found through /proc; 0 if it cannot be read).
func consulCPU(port string) time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if i := slices.Index(args, "-http-port"); i < 0 || i+1 >= len(args) || args[i+1] != port {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			return 0
		}
		// Fields after the ")" that ends the command name: utime and stime
		// are fields 14 and 15 of the line, in clock ticks (100 a second).
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 13 {
			return 0
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond
	}
	return 0
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// percentile returns the p-th percentile (0-100) of ds (sorted in place).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, len(ds)*p/100)]
}

// loadAvg is the 1-minute load average, to qualify latency figures taken on
// a shared machine.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func kib(b float64) string {
	switch {
	case b >= 10<<20:
		return fmt.Sprintf("%.0f MiB", b/(1<<20))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.0f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}
