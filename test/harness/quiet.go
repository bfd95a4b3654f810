package harness

import (
	"fmt"
	"testing"
	"time"
)

// QuietFor is how long a server's Raft index must stay still for WaitQuiet.
const QuietFor = 500 * time.Millisecond

// WaitQuiet waits until the server's Raft index has not moved for QuietFor.
// A freshly started (or restarted) server appends a few entries of its
// own in its first seconds; a test that then checks that gwsync writes
// nothing measures from a quiet server, so only gwsync's writes can move
// the index.
func (s *Server) WaitQuiet(t testing.TB, timeout time.Duration) {
	t.Helper()
	last, since := s.RaftLastIndex(t), time.Now()
	Eventually(t, timeout, func() error {
		if idx := s.RaftLastIndex(t); idx != last {
			last, since = idx, time.Now()
		}
		if time.Since(since) < QuietFor {
			return fmt.Errorf("consul %s: raft index %d still moving", s.DC, last)
		}
		return nil
	})
}
