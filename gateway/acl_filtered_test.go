package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/test/harness"
)

// filteredClient is a client of f whose answers on paths starting with
// prefix carry X-Consul-Results-Filtered-By-ACLs: true, as Consul marks
// an answer it cut to what the token may read. (The e2e tests show the
// same against ACL-enabled servers.)
func filteredClient(t *testing.T, f *fakeConsul, prefix string) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, prefix) {
			// The api client reads the headers after LastContact only
			// when it is present, as Consul always sends it.
			w.Header().Set("X-Consul-LastContact", "0")
			w.Header().Set("X-Consul-Results-Filtered-By-ACLs", "true")
		}
		f.serve(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := api.NewClient(&api.Config{Address: strings.TrimPrefix(srv.URL, "http://"), HttpClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An empty public answer that ACLs filtered is not "no instances": it is
// an error naming the cause; a filtered answer that shows instances is
// served.
func TestResolver_PublicFilteredByACLs(t *testing.T) {
	e := newFakeEnv(t)
	e.mirror.set(t, "web", []int{80}, true)
	e.public.setAnswer("gwsync-pay", publicEntries("pay", 90))
	opts := e.options()
	var logs strings.Builder
	opts.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	opts.Public = filteredClient(t, e.public, "/v1/query/")
	r := e.run(t, opts)
	waitUsable(t, r, true)

	a, err := r.Resolve(context.Background(), "billing") // uncovered, hidden
	if !errors.Is(err, ErrFilteredByACLs) || len(a.Instances) != 0 {
		t.Fatalf("uncovered billing, empty filtered answer: %d instances from %s, %v; want ErrFilteredByACLs", len(a.Instances), a.Source, err)
	}
	if st := r.Status(); st.Negative != 0 {
		t.Fatalf("a filtered answer was remembered as \"none\": %+v", st)
	}
	a, err = r.Resolve(context.Background(), "pay")
	if err != nil || len(a.Instances) != 1 || a.Source != SourcePublic {
		t.Fatalf("pay, filtered answer with an instance: %d instances from %s, %v; want 1 from public", len(a.Instances), a.Source, err)
	}
	if n := strings.Count(logs.String(), "answer filtered by ACLs"); n != 1 {
		t.Fatalf("%d warnings about filtered answers, want 1 (at most one a minute):\n%s", n, logs.String())
	}
}

// A local answer that ACLs filtered (the read token cannot see the
// mirrored nodes or services) is not the mirror's "none": the lookup goes
// to the public cluster.
func TestResolver_LocalFilteredByACLs(t *testing.T) {
	e := newFakeEnv(t)
	e.mirror.set(t, "web", nil, true) // covered; the token sees no instance
	e.public.setAnswer("gwsync-web", publicEntries("web", 81))
	opts := e.options()
	opts.Local = filteredClient(t, e.local, "/v1/health/")
	r := e.run(t, opts)
	waitUsable(t, r, true)

	a, err := r.Resolve(context.Background(), "web")
	if err != nil || len(a.Instances) != 1 || a.Source != SourcePublic {
		t.Fatalf("web: %d instances from %s, %v; want the public answer, not the filtered local one", len(a.Instances), a.Source, err)
	}
}

// Records the read token may not see make the mirror unusable, and the
// reason says which permission is missing (not "sync marker missing").
func TestResolver_RecordsHiddenByACLs(t *testing.T) {
	e := newFakeEnv(t) // nothing written: the list answers 404, as Consul does when it hides every key
	opts := e.options()
	opts.Local = filteredClient(t, e.local, "/v1/kv/")
	r := e.run(t, opts)
	want := "hidden by ACLs (the read token lacks key:read on gwsync/gateways/" + fakeGateway + "/)"
	harness.Eventually(t, 5*time.Second, func() error {
		if st := r.Status(); st.LocalUsable || !strings.Contains(st.LocalReason, want) {
			return fmt.Errorf("local usable %v, reason %q; want unusable, the reason naming the missing key:read", st.LocalUsable, st.LocalReason)
		}
		return nil
	})
}
