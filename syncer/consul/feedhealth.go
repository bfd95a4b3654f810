package consul

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
)

// feedHealth is the change feed's HTTP transport: it passes every request
// through and tells up what each answer says of the public DC it asked
// (the request's dc parameter), so gwsync_public_dc_up follows the feed
// too. With the full reconcile minutes apart, the feed's lists are the
// only reads of a DC in between, and a DC that stopped answering them (a
// hung agent: connections accepted, no reply) would otherwise stay "up"
// until the next cycle. It sits at the transport so that it depends only
// on Consul's HTTP API, not on the feed's Go interfaces.
type feedHealth struct {
	next http.RoundTripper
	up   func(dc string, ok bool)

	mu    sync.Mutex
	known []string // the DCs the feed has asked
}

// datacentersPath is the agent's own list: when it fails, no DC answers
// through that agent.
const datacentersPath = "/v1/catalog/datacenters"

func newFeedHealth(next http.RoundTripper, up func(dc string, ok bool)) *feedHealth {
	return &feedHealth{next: next, up: up}
}

func (f *feedHealth) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := f.next.RoundTrip(req)
	if errors.Is(req.Context().Err(), context.Canceled) {
		return resp, err // cut short by gwsync itself (shutdown): says nothing
	}
	ok := err == nil && resp.StatusCode < http.StatusInternalServerError && resp.StatusCode != http.StatusTooManyRequests
	if req.URL.Path == datacentersPath {
		if !ok {
			f.mu.Lock()
			known := slices.Clone(f.known)
			f.mu.Unlock()
			for _, dc := range known {
				f.up(dc, false)
			}
		}
		return resp, err
	}
	if dc := req.URL.Query().Get("dc"); dc != "" {
		f.mu.Lock()
		if !slices.Contains(f.known, dc) {
			f.known = append(f.known, dc)
		}
		f.mu.Unlock()
		// A 4xx (a denied token, a bad request) is an answer: the DC is up.
		f.up(dc, ok)
	}
	return resp, err
}
