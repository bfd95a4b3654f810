package consul

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"testing"
)

// fakeRoundTripper answers every request with code, or fails with err.
type fakeRoundTripper struct {
	code int
	err  error
}

func (f *fakeRoundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &http.Response{StatusCode: f.code, Body: http.NoBody}, nil
}

func feedRequest(t *testing.T, ctx context.Context, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:8500"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestFeedHealth_Reports(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		code int
		err  error
		want map[string]bool // reported up/down per DC; absent: nothing said
	}{
		{name: "answer", ctx: context.Background(), code: 200, want: map[string]bool{"dc2": true}},
		{name: "no answer in time", ctx: context.Background(), err: context.DeadlineExceeded, want: map[string]bool{"dc2": false}},
		{name: "server error", ctx: context.Background(), code: 500, want: map[string]bool{"dc2": false}},
		{name: "rate limited", ctx: context.Background(), code: 429, want: map[string]bool{"dc2": false}},
		{name: "denied: the DC answered", ctx: context.Background(), code: 403, want: map[string]bool{"dc2": true}},
		{name: "shutdown says nothing", ctx: canceled, err: context.Canceled, want: map[string]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v1/health/state/any?dc=dc2&index=7&wait=2s", "/v1/catalog/services?dc=dc2&stale="} {
				got := map[string]bool{}
				f := newFeedHealth(&fakeRoundTripper{code: tc.code, err: tc.err}, func(dc string, ok bool) { got[dc] = ok })
				resp, err := f.RoundTrip(feedRequest(t, tc.ctx, path))
				if !errors.Is(err, tc.err) || (err == nil && resp.StatusCode != tc.code) {
					t.Fatalf("%s: answer %v %v not passed through", path, resp, err)
				}
				if !maps.Equal(got, tc.want) {
					t.Fatalf("%s: reported %v, want %v", path, got, tc.want)
				}
			}
		})
	}
}

// A datacenter list the agent does not give means no DC answers through
// it: every DC the feed asked is reported down.
func TestFeedHealth_DatacentersFailure(t *testing.T) {
	next := &fakeRoundTripper{code: 200}
	got := map[string]bool{}
	f := newFeedHealth(next, func(dc string, ok bool) { got[dc] = ok })
	for _, path := range []string{"/v1/catalog/services?dc=dc1", "/v1/catalog/services?dc=dc2", "/v1/catalog/datacenters"} {
		if _, err := f.RoundTrip(feedRequest(t, context.Background(), path)); err != nil {
			t.Fatal(err)
		}
	}
	if want := map[string]bool{"dc1": true, "dc2": true}; !maps.Equal(got, want) {
		t.Fatalf("reported %v, want %v (a datacenter list says nothing of the DCs' own reads)", got, want)
	}
	next.err = context.DeadlineExceeded
	if _, err := f.RoundTrip(feedRequest(t, context.Background(), "/v1/catalog/datacenters")); err == nil {
		t.Fatal("the failure was not passed through")
	}
	if want := map[string]bool{"dc1": false, "dc2": false}; !maps.Equal(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
}
