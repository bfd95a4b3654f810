package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/syncer/watch"
)

// fakeFeedSource answers every read with err (and dcs for the list).
type fakeFeedSource struct {
	dcs []string
	err error
}

func (f *fakeFeedSource) Datacenters(context.Context) ([]string, error) { return f.dcs, f.err }

func (f *fakeFeedSource) HealthChecks(context.Context, watch.Query) ([]watch.Check, watch.Meta, error) {
	return nil, watch.Meta{}, f.err
}

func (f *fakeFeedSource) CatalogServices(context.Context, watch.Query) (map[string][]string, watch.Meta, error) {
	return nil, watch.Meta{}, f.err
}

func TestFeedHealth_Reports(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want map[string]bool // reported up/down per DC; absent: nothing said
	}{
		{name: "answer", ctx: context.Background(), want: map[string]bool{"dc2": true}},
		{name: "timeout", ctx: context.Background(), err: fmt.Errorf("list: %w", context.DeadlineExceeded), want: map[string]bool{"dc2": false}},
		{name: "server error", ctx: context.Background(), err: api.StatusError{Code: 500}, want: map[string]bool{"dc2": false}},
		{name: "rate limited", ctx: context.Background(), err: api.StatusError{Code: 429}, want: map[string]bool{"dc2": false}},
		{name: "denied: the DC answered", ctx: context.Background(), err: fmt.Errorf("list: %w", api.StatusError{Code: 403}), want: map[string]bool{"dc2": true}},
		{name: "shutdown says nothing", ctx: canceled, err: context.Canceled, want: map[string]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeFeedSource{err: tc.err}
			for _, read := range []func(f *feedHealth) error{
				func(f *feedHealth) error { _, _, err := f.HealthChecks(tc.ctx, watch.Query{DC: "dc2"}); return err },
				func(f *feedHealth) error { _, _, err := f.CatalogServices(tc.ctx, watch.Query{DC: "dc2"}); return err },
			} {
				got := map[string]bool{}
				f := newFeedHealth(src, func(dc string, ok bool) { got[dc] = ok })
				if err := read(f); !errors.Is(err, tc.err) {
					t.Fatalf("error %v, want %v passed through", err, tc.err)
				}
				if !maps.Equal(got, tc.want) {
					t.Fatalf("reported %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// A datacenter list the agent does not give means no DC answers through
// it: every DC of the last list is reported down.
func TestFeedHealth_DatacentersFailure(t *testing.T) {
	src := &fakeFeedSource{dcs: []string{"dc1", "dc2"}}
	got := map[string]bool{}
	f := newFeedHealth(src, func(dc string, ok bool) { got[dc] = ok })
	if _, err := f.Datacenters(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("a datacenter list reported %v; it says nothing of the DCs' own reads", got)
	}
	src.dcs, src.err = nil, fmt.Errorf("list datacenters: %w", context.DeadlineExceeded)
	if _, err := f.Datacenters(context.Background()); err == nil {
		t.Fatal("the failure was not passed through")
	}
	if want := map[string]bool{"dc1": false, "dc2": false}; !maps.Equal(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
}
