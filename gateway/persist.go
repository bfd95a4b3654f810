package gateway

import (
	"context"
	"time"
)

// loadSnapshot reads the disk snapshot, if configured. A file that cannot
// be used is logged and ignored: the resolver starts empty, never fails.
func (r *Resolver) loadSnapshot() {
	if r.opts.SnapshotPath == "" {
		return
	}
	services, err := readSnapshot(r.opts.SnapshotPath, r.opts.Gateway, r.opts.MaxSnapshotBytes)
	if err != nil {
		r.log.Error("snapshot unusable; starting without it", "path", r.opts.SnapshotPath, "error", err)
		return
	}
	if services == nil {
		r.log.Info("no snapshot yet", "path", r.opts.SnapshotPath)
		return
	}
	r.snapshot = make(map[string]*Answer, len(services))
	for name, s := range services {
		r.snapshot[name] = &Answer{Service: name, Instances: s.Instances, Source: SourceSnapshot, FetchedAt: s.FetchedAt}
	}
	r.log.Info("snapshot loaded", "path", r.opts.SnapshotPath, "services", len(services))
}

// snapshotLoop writes the snapshot every SnapshotInterval when an answer
// changed since the last write.
func (r *Resolver) snapshotLoop(ctx context.Context) {
	if r.opts.SnapshotPath == "" {
		return
	}
	t := time.NewTicker(r.opts.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.writeSnapshot()
		}
	}
}

// writeSnapshot persists the answers of the held (live) services that
// have instances, if anything changed: evicted services leave it.
func (r *Resolver) writeSnapshot() {
	if r.opts.SnapshotPath == "" || !r.dirty.Swap(false) {
		return
	}
	answers := make(map[string]*Answer, r.held.len())
	r.held.each(func(e *entry) { answers[e.service] = e.answer.Load() })
	b, err := encodeSnapshot(r.opts.Gateway, r.opts.Now(), answers, r.opts.MaxSnapshotBytes)
	if err == nil {
		err = writeFileAtomic(r.opts.SnapshotPath, b)
	}
	if err != nil {
		r.dirty.Store(true) // try again next time
		r.log.Error("snapshot not written", "path", r.opts.SnapshotPath, "error", err)
		return
	}
	r.log.Debug("snapshot written", "path", r.opts.SnapshotPath, "services", len(answers), "bytes", len(b))
}
