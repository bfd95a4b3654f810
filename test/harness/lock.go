package harness

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// Lock reads gateway's HA lock in the server's KV (default prefix): who
// holds it and with which session ("" and a zero Holder when nobody).
func (s *Server) Lock(t testing.TB, gateway string) (mirror.Holder, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, _, err := s.Client(t).KV().Get(mirror.LockKey(mirror.DefaultKVPrefix, gateway), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("harness: read lock of %s: %v", gateway, err)
	}
	if kv == nil || kv.Session == "" {
		return mirror.Holder{}, ""
	}
	h, err := mirror.DecodeHolder(kv.Value)
	if err != nil {
		t.Fatalf("harness: lock of %s: %v", gateway, err)
	}
	return h, kv.Session
}
