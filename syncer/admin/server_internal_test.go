package admin

import (
	"testing"
	"time"
)

// TestServer_httpServerBounds: the write timeout leaves a diff its whole
// time and the answer's margin; the other bounds take their defaults.
func TestServer_httpServerBounds(t *testing.T) {
	for _, tc := range []struct {
		diff, write time.Duration
	}{
		{diff: 0, write: DefaultDiffTimeout + DiffWriteMargin},
		{diff: 5 * time.Minute, write: 5*time.Minute + DiffWriteMargin},
	} {
		srv := New(Options{DiffTimeout: tc.diff}).httpServer()
		if srv.WriteTimeout != tc.write || srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || srv.ReadTimeout != DefaultReadTimeout ||
			srv.IdleTimeout != DefaultIdleTimeout || srv.MaxHeaderBytes != DefaultMaxHeaderBytes {
			t.Fatalf("diff timeout %s: server bounds write %s, read header %s, read %s, idle %s, header bytes %d",
				tc.diff, srv.WriteTimeout, srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
		}
	}
}
