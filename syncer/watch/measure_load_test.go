package watch

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Load for measure_test.go: what changes in the public catalog during a
// phase.

// Load kinds.
const (
	loadNone     = ""
	loadFlip     = "flip"     // a passing instance turns critical
	loadOutput   = "output"   // a check's output changes, its status does not
	loadRegister = "register" // a new instance (with a passing check) joins a service
)

// change is one write a watcher should report, written at at.
type change struct {
	service string
	at      time.Time
}

// loadGen writes changes into one DC's catalog. Flips turn each instance
// critical once, in a random order, and are never undone: every flip is a
// change a later list still shows (an instance that went critical and back
// between two reads is, rightly, no change at all, and would blur the
// latency).
type loadGen struct {
	shape    catalogShape
	client   *api.Client
	rnd      *rand.Rand
	order    []int // instance numbers s*perService+k not flipped yet, shuffled
	critical map[int]bool
	outputs  int
	extra    int
}

func newLoadGen(shape catalogShape, client *api.Client) *loadGen {
	rnd := rand.New(rand.NewPCG(uint64(shape.services), 10))
	return &loadGen{shape: shape, client: client, rnd: rnd, order: rnd.Perm(shape.services * shape.perService), critical: map[int]bool{}}
}

// run writes rate changes of kind a second for window and returns those a
// watcher must report; with kind loadNone it only waits out the window (a
// measurement window, not a synchronisation).
func (g *loadGen) run(t *testing.T, kind string, rate float64, window time.Duration) []change {
	t.Helper()
	end := time.NewTimer(window)
	defer end.Stop()
	if kind == loadNone {
		<-end.C
		return nil
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	var out []change
	for {
		select {
		case <-end.C:
			return out
		case <-tick.C:
		}
		at := time.Now()
		service, report, err := g.write(kind)
		if err != nil {
			t.Fatalf("load %s: %v", kind, err)
		}
		if report {
			out = append(out, change{service: service, at: at})
		}
	}
}

// write makes one change; report says whether it changes any answer.
func (g *loadGen) write(kind string) (service string, report bool, err error) {
	sh := g.shape
	switch kind {
	case loadFlip:
		if len(g.order) == 0 {
			return "", false, fmt.Errorf("every instance is critical already")
		}
		i := g.order[0]
		g.order = g.order[1:]
		g.critical[i] = true
		s, n := sh.instance(i)
		return serviceName(s), true, txn(g.client, api.TxnOps{{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: instanceCheck(s, n, api.HealthCritical)}}})
	case loadOutput:
		i := g.rnd.IntN(sh.services * sh.perService)
		s, n := sh.instance(i)
		status := api.HealthPassing
		if g.critical[i] {
			status = api.HealthCritical
		}
		g.outputs++
		c := instanceCheck(s, n, status)
		c.Output = fmt.Sprintf("HTTP GET http://%s:8080/health: 200 OK Output: {\"status\":\"UP\",\"uptime\":%d}", nodeAddr(n), g.outputs)
		return serviceName(s), false, txn(g.client, api.TxnOps{{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: c}}})
	case loadRegister:
		s, n := g.rnd.IntN(sh.services), g.rnd.IntN(sh.nodes())
		g.extra++
		id := fmt.Sprintf("%s-extra-%d", serviceName(s), g.extra)
		c := instanceCheck(s, n, api.HealthPassing)
		c.CheckID, c.ServiceID = "service:"+id, id
		return serviceName(s), true, txn(g.client, api.TxnOps{
			{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: nodeName(n), Service: api.AgentService{
				ID: id, Service: serviceName(s), Port: 9000 + g.extra%1000, Tags: []string{"http", "v1", fmt.Sprintf("team-%d", s%50)},
				Meta: map[string]string{"version": fmt.Sprintf("1.4.%d", s%10)}, Weights: api.AgentWeights{Passing: 1, Warning: 1},
			}}},
			{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: c}},
		})
	}
	return "", false, fmt.Errorf("unknown load %q", kind)
}

// instance returns the service and node of instance number i.
func (c catalogShape) instance(i int) (service, node int) {
	s, k := i/c.perService, i%c.perService
	return s, (s - k + c.services) % c.services // node n runs s as its k-th instance
}

// seenLog records when each service was reported changed.
type seenLog struct {
	mu   sync.Mutex
	seen map[string][]time.Time
}

func newSeenLog() *seenLog { return &seenLog{seen: map[string][]time.Time{}} }

func (l *seenLog) add(services []string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range services {
		l.seen[s] = append(l.seen[s], now)
	}
}

// latencies matches every change with the first report of its service at
// or after it, waiting up to grace for late ones.
func (l *seenLog) latencies(changes []change, grace time.Duration) (p50, p99 time.Duration, detected int) {
	deadline := time.Now().Add(grace)
	for {
		var ds []time.Duration
		l.mu.Lock()
		for _, c := range changes {
			for _, at := range l.seen[c.service] {
				if !at.Before(c.at) {
					ds = append(ds, at.Sub(c.at))
					break
				}
			}
		}
		l.mu.Unlock()
		if len(ds) == len(changes) || time.Now().After(deadline) {
			return percentile(ds, 50), percentile(ds, 99), len(ds)
		}
		time.Sleep(100 * time.Millisecond) // a measurement's grace period, not synchronisation
	}
}
