package harness

import (
	"errors"
	"testing"
	"time"
)

// PollInterval is how often Eventually re-checks its condition: short
// enough that waits end within a few tens of milliseconds of the condition
// becoming true, long enough not to load the two shared cores.
const PollInterval = 25 * time.Millisecond

// Eventually calls cond every PollInterval until it returns nil; if timeout
// passes first, it fails the test with cond's last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("harness: condition not met within %s: %v", timeout, err)
	}
}

// poll is Eventually without the test: it returns cond's last error on
// timeout, so it can run off the test goroutine. A permanentError ends the
// wait at once.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(PollInterval)
	}
}

// permanentError tells poll that waiting longer cannot help (for example,
// the process it waits for has exited).
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
