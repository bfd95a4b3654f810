package watch

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/test/harness"
)

// The alternative the detector is measured against: one blocking
// /v1/health/service/<s> per service, as a per-service watcher (or a local
// agent's streaming backend) would hold.

// perServiceWatchers runs one blocking loop per service until ctx ends and
// reports every answer whose index moved to seen. errs counts failed
// requests (a refused connection, a 429).
type perServiceWatchers struct {
	client *api.Client
	wait   time.Duration
	seen   *seenLog
	// answered counts services that have had at least one answer.
	answered, errs, requests atomic.Int64
}

func (w *perServiceWatchers) run(ctx context.Context, services int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for s := range services {
		wg.Go(func() { w.watch(ctx, serviceName(s)) })
	}
	return &wg
}

func (w *perServiceWatchers) watch(ctx context.Context, service string) {
	var index uint64
	first := true
	for ctx.Err() == nil {
		q := &api.QueryOptions{AllowStale: true, WaitIndex: index}
		if index > 0 {
			q.WaitTime = w.wait
		}
		rctx, cancel := context.WithTimeout(ctx, w.wait+w.wait/16+10*time.Second)
		_, qm, err := w.client.Health().Service(service, "", false, q.WithContext(rctx))
		cancel()
		w.requests.Add(1)
		if err != nil {
			if ctx.Err() == nil {
				w.errs.Add(1)
				sleep(ctx, backoff(100*time.Millisecond, 5*time.Second, 1))
			}
			continue
		}
		if first {
			w.answered.Add(1)
			first = false
		}
		if index > 0 && qm.LastIndex != index {
			w.seen.add([]string{service})
		}
		index = max(qm.LastIndex, 1)
	}
}

const perServiceMech = "one blocking health/service per service"

// measurePerService measures the alternative on a server that allows the
// connections it needs (Consul's default is 200 per client address).
func measurePerService(t *testing.T, shape catalogShape, window time.Duration) []measureRow {
	// Room for every watcher's connection, the ones being replaced, and the
	// load generator's (all from 127.0.0.1).
	limit := 2*shape.services + 100
	srv := harness.StartServer(t, "dc1", harness.WithHCL(fmt.Sprintf("limits { http_max_conns_per_client = %d }", limit)))
	shape.register(t, srv.Client(t))
	g := newLoadGen(shape, srv.Client(t))
	start := func(t *testing.T, wait time.Duration) watcher {
		client, ct, cc := measuredClient(t, srv.HTTPAddr(), 0)
		w := &perServiceWatchers{client: client, wait: wait, seen: newSeenLog()}
		ctx, cancel := context.WithCancel(context.Background())
		wg := w.run(ctx, shape.services)
		harness.Eventually(t, 2*time.Minute, func() error {
			if n := w.answered.Load(); n < int64(shape.services) {
				return fmt.Errorf("%d of %d watchers answered (%d errors)", n, shape.services, w.errs.Load())
			}
			return nil
		})
		errs0 := w.errs.Load()
		return watcher{
			seen: w.seen, ct: ct, cc: cc, requests: w.requests.Load,
			note: func() string {
				return fmt.Sprintf("%d errors; http_max_conns_per_client raised to %d", w.errs.Load()-errs0, limit)
			},
			stop: func() {
				cancel()
				wg.Wait()
			},
		}
	}
	rows := []measureRow{baseline(t, perServiceMech, srv, shape, window)}
	for i, ph := range phases {
		rows = append(rows, runPhase(t, perServiceMech, shape, srv, g, ph, window, start))
		if i == 0 {
			rows = append(rows, projectIdle(rows[len(rows)-1]))
		}
	}
	return rows
}

// refusedAtDefaultLimit starts the per-service watchers against a server
// with Consul's default connection limit and counts how many are refused.
func refusedAtDefaultLimit(t *testing.T, addr string, shape catalogShape) measureRow {
	client, _, cc := measuredClient(t, addr, 0)
	w := &perServiceWatchers{client: client, wait: time.Minute, seen: newSeenLog()}
	// net/http logs every 429 a server sends on an idle connection: here,
	// hundreds.
	log.SetOutput(io.Discard)
	defer log.SetOutput(os.Stderr)
	ctx, cancel := context.WithCancel(context.Background())
	wg := w.run(ctx, shape.services)
	// An observation window (a measurement, not a synchronisation): long
	// enough for every watcher to try, and for refused ones to retry.
	window := time.NewTimer(15 * time.Second)
	<-window.C
	row := measureRow{
		mech: perServiceMech, services: shape.services, phase: "default http_max_conns_per_client (200)",
		conns: cc.maxOpen.Load(),
		note:  fmt.Sprintf("%d of %d watchers never answered, %d failed requests in 15 s", int64(shape.services)-w.answered.Load(), shape.services, w.errs.Load()),
	}
	cancel()
	wg.Wait()
	t.Logf("%+v", row)
	return row
}
