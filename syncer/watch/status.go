package watch

import "time"

// LoopStatus is one loop's state, for `gwsync status` and the admin API.
type LoopStatus struct {
	DC   string `json:"dc"`
	Loop string `json:"loop"` // critical | warning | catalog
	// State is StateConnecting, StateWatching or StateBackoff.
	State string `json:"state"`
	// LastWake is when the last answer arrived; WakeUps counts answers and
	// Changes the services they showed changed.
	LastWake time.Time `json:"last_wake,omitzero"`
	WakeUps  uint64    `json:"wakeups"`
	Changes  uint64    `json:"changes"`
	// LastError is the last failed request's error (kept after recovery;
	// ConsecutiveFailures says whether it is current).
	LastError           string    `json:"last_error,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	// Index is the X-Consul-Index of the list held.
	Index uint64 `json:"index"`
	// LastResponseBytes and LastDecodedBytes are the last answer's body
	// size as received (compressed) and decoded.
	LastResponseBytes int64 `json:"last_response_bytes"`
	LastDecodedBytes  int64 `json:"last_decoded_bytes"`
}

// Healthy reports whether the loop holds a current list and is waiting for
// the next change.
func (s LoopStatus) Healthy() bool { return s.State == StateWatching && s.ConsecutiveFailures == 0 }
