package gateway

import (
	"context"
	"time"

	"github.com/gwsync/gwsync/mirror"
)

// probeLoop reads the marker key with a short deadline every
// ProbeInterval, through the local breaker. The watch's blocking read
// cannot tell a quiet cluster from one that hangs (accepts, never
// answers) before its long wait ends; the probe can, within ProbeTimeout,
// so a hung cluster trips the breaker (ConsecutiveFailures probes) in a
// few seconds. While the breaker is open the probe is refused until
// OpenTimeout has passed; then it is the half-open call that finds the
// cluster back.
func (r *Resolver) probeLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.ProbeInterval)
	defer t.Stop()
	key := mirror.MarkerKey(r.opts.KVPrefix, r.opts.Gateway)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := r.probe(ctx, key)
		switch {
		case err == nil:
			r.confirm()
		case ctx.Err() == nil && !rejected(err):
			r.log.Debug("local probe failed", "error", err)
		}
	}
}

func (r *Resolver) probe(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.ProbeTimeout)
	defer cancel()
	return r.localBr.run(func() error {
		_, _, err := r.opts.Local.KV().Get(key, localQueryOptions(ctx, 0, 0))
		return err
	})
}
