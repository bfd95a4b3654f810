package refgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gwsync/gwsync/gateway"
)

type fixedResolver struct {
	answer gateway.Answer
	err    error
	asked  []string
}

func (f *fixedResolver) Resolve(_ context.Context, service string) (gateway.Answer, error) {
	f.asked = append(f.asked, service)
	return f.answer, f.err
}

func TestSplitPath(t *testing.T) {
	tests := []struct{ in, service, rest string }{
		{in: "/web/a/b", service: "web", rest: "/a/b"},
		{in: "/web/", service: "web", rest: "/"},
		{in: "/web", service: "web", rest: "/"},
		{in: "/", service: "", rest: "/"},
		{in: "", service: "", rest: "/"},
	}
	for _, tt := range tests {
		s, r := splitPath(tt.in)
		if s != tt.service || r != tt.rest {
			t.Errorf("splitPath(%q) = %q, %q; want %q, %q", tt.in, s, r, tt.service, tt.rest)
		}
	}
}

func TestHandler_ServeHTTP(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "yes")
		io.WriteString(w, "path="+r.URL.Path+" query="+r.URL.RawQuery)
	}))
	defer backend.Close()
	port, _ := strconv.Atoi(backend.URL[strings.LastIndex(backend.URL, ":")+1:])
	up := []gateway.Instance{{ID: "web-1", Address: "127.0.0.1", Port: port, Weights: gateway.Weights{Passing: 1}}}
	down := []gateway.Instance{{ID: "web-1", Address: "127.0.0.1", Port: 1, Weights: gateway.Weights{Passing: 1}}}

	tests := []struct {
		name       string
		path       string
		answer     gateway.Answer
		err        error
		wantStatus int
		wantSource string
		wantBody   string
	}{
		{name: "proxied", path: "/web/a/b?x=1", answer: gateway.Answer{Instances: up, Source: gateway.SourceLocal}, wantStatus: 200, wantSource: "local", wantBody: "path=/a/b query=x=1"},
		{name: "root of service", path: "/web", answer: gateway.Answer{Instances: up, Source: gateway.SourceMemory}, wantStatus: 200, wantSource: "memory", wantBody: "path=/ query="},
		{name: "no instances", path: "/web/x", answer: gateway.Answer{Source: gateway.SourceLocal}, wantStatus: 503, wantSource: "local", wantBody: "no healthy instances"},
		{name: "resolve error", path: "/web/x", err: errors.New("no cluster answered"), wantStatus: 503, wantSource: "none", wantBody: "no cluster answered"},
		{name: "no service", path: "/", wantStatus: 404, wantBody: "no service in path"},
		{name: "invalid name", path: "/web/x", err: fmt.Errorf("resolve: %w: empty", gateway.ErrInvalidName), wantStatus: 404, wantSource: "none", wantBody: "invalid service name"},
		{name: "public budget spent", path: "/web/x", err: fmt.Errorf("x: %w", gateway.ErrPublicBusy), wantStatus: 503, wantSource: "none", wantBody: "rate-limited"},
		{name: "upstream down", path: "/web/x", answer: gateway.Answer{Instances: down, Source: gateway.SourcePublic}, wantStatus: 502, wantSource: "public", wantBody: "upstream 127.0.0.1:1 failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &fixedResolver{answer: tt.answer, err: tt.err}
			srv := httptest.NewServer(New(res, nil))
			defer srv.Close()
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get(SourceHeader) != tt.wantSource || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("got %d source %q body %q; want %d source %q body containing %q",
					resp.StatusCode, resp.Header.Get(SourceHeader), body, tt.wantStatus, tt.wantSource, tt.wantBody)
			}
			if tt.wantStatus == 200 && resp.Header.Get("X-Backend") != "yes" {
				t.Error("backend headers not passed through")
			}
			if tt.path != "/" && (len(res.asked) != 1 || res.asked[0] != "web") {
				t.Errorf("resolver asked for %v, want [web]", res.asked)
			}
		})
	}
}

// Any path is survived: it becomes a name for the resolver (which refuses
// impossible ones), and what goes back to the client is bounded.
func TestHandler_AnyPath(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		path string
		want string // the name the resolver is asked for; "" for none
	}{
		{path: "/%00marker/", want: "\x00marker"},
		{path: "/%2e%2e/x", want: ".."},
		{path: "/a%2Fb/c", want: "a"}, // the decoded path's first segment
		{path: "//x", want: ""},
		{path: "/" + long + "/x", want: long},
		{path: "/%ff%fe/", want: "\xff\xfe"},
	}
	for _, tt := range tests {
		res := &fixedResolver{err: fmt.Errorf("resolve: %w", gateway.ErrInvalidName)}
		srv := httptest.NewServer(New(res, nil))
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			srv.Close()
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		want := tt.want
		switch {
		case tt.want == "" && (len(res.asked) != 0 || resp.StatusCode != http.StatusNotFound):
			t.Errorf("%.40s: asked %q, status %d; want no lookup and 404", tt.path, res.asked, resp.StatusCode)
		case tt.want != "" && (len(res.asked) != 1 || res.asked[0] != want):
			t.Errorf("%.40s: resolver asked for %.40q, want %.40q", tt.path, res.asked, want)
		case tt.want != "" && resp.StatusCode != http.StatusNotFound:
			t.Errorf("%.40s: status %d, want 404 for an invalid name", tt.path, resp.StatusCode)
		case len(body) > 600:
			t.Errorf("%.40s: %d bytes of body for a bad name, want it bounded", tt.path, len(body))
		}
	}
}
