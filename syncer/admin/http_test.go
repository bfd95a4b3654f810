package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/admin/admintest"
	"github.com/gwsync/gwsync/test/harness"
)

// Fast tests of the admin server's HTTP behaviour against a fake
// controller: cross-site requests, the Host check, body and header limits,
// timeouts, methods, bearer tokens, panics. Each of these failed before
// the server was hardened (issue 13 item 11).

// TestServer_CrossSiteResyncRefused: without a token on loopback, a browser
// page must not be able to start a resync (forced: it applies held mass
// deletes). A simple cross-site POST (a form, text/plain, no body) and a
// JSON POST marked cross-site by Origin or Sec-Fetch-Site are refused and
// start nothing.
func TestServer_CrossSiteResyncRefused(t *testing.T) {
	ctrl := admintest.NewFake("gw1")
	base := fakeServer(t, ctrl, nil)
	body := `{"gateway":"gw1","force":true}`
	for _, tc := range []struct {
		name   string
		req    request
		code   int
		errHas string
	}{
		{name: "text/plain body", code: http.StatusUnsupportedMediaType, errHas: "Content-Type: application/json",
			req: request{method: "POST", path: "/v1/resync", body: body, header: map[string]string{"Content-Type": "text/plain"}}},
		{name: "form", code: http.StatusUnsupportedMediaType, errHas: "Content-Type: application/json",
			req: request{method: "POST", path: "/v1/resync", body: "gateway=gw1&force=true", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}},
		{name: "query only, no body", code: http.StatusUnsupportedMediaType, errHas: "Content-Type: application/json",
			req: request{method: "POST", path: "/v1/resync?gateway=gw1&force=true"}},
		{name: "JSON from another origin", code: http.StatusForbidden, errHas: "cross-origin",
			req: request{method: "POST", path: "/v1/resync", body: body, header: map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}}},
		{name: "JSON from an opaque origin", code: http.StatusForbidden, errHas: "cross-origin",
			req: request{method: "POST", path: "/v1/resync", body: body, header: map[string]string{"Content-Type": "application/json", "Origin": "null"}}},
		{name: "JSON marked cross-site", code: http.StatusForbidden, errHas: "cross-origin",
			req: request{method: "POST", path: "/v1/resync", body: body, header: map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}}},
		{name: "JSON with an empty body", code: http.StatusBadRequest, errHas: "empty body",
			req: request{method: "POST", path: "/v1/resync", header: jsonHeader}},
		{name: "JSON body and query", code: http.StatusBadRequest, errHas: "query",
			req: request{method: "POST", path: "/v1/resync?force=true", body: `{"gateway":"gw1"}`, header: jsonHeader}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, b := send(t, base, tc.req)
			if code != tc.code || !strings.Contains(errorOf(t, b), tc.errHas) {
				t.Fatalf("%d %s; want %d with %q", code, b, tc.code, tc.errHas)
			}
		})
	}
	if n := len(ctrl.Calls()); n != 0 {
		t.Fatalf("refused requests ran %d syncs", n)
	}
	// The same request from the admin API's own origin, as JSON, runs.
	code, _, b := send(t, base, request{method: "POST", path: "/v1/resync", body: body,
		header: map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": base}})
	if code != http.StatusAccepted {
		t.Fatalf("same-origin JSON resync: %d %s", code, b)
	}
	waitFakeSyncs(t, ctrl, 1)
}

// TestServer_HostChecked: a page that rebinds its own name to 127.0.0.1
// sends its own name as Host; /v1/ endpoints refuse it (it could otherwise
// read a diff), while loopback names, IP addresses and configured names
// are served. Probes and scrapes (/healthz, /readyz, /metrics) answer any
// Host: they are read by infrastructure under whatever name it uses.
func TestServer_HostChecked(t *testing.T) {
	ctrl := admintest.NewFake("gw1")
	base := fakeServer(t, ctrl, func(o *admin.Options) { o.AllowedHosts = []string{"gwsync.internal"} })
	port := base[strings.LastIndex(base, ":"):]
	for _, tc := range []struct {
		host string
		code int
	}{
		{host: "rebind.example" + port, code: http.StatusForbidden},
		{host: "rebind.example", code: http.StatusForbidden},
		{host: "localhost.rebind.example" + port, code: http.StatusForbidden},
		{host: "localhost" + port, code: http.StatusOK},
		{host: "LocalHost" + port, code: http.StatusOK},
		{host: "127.0.0.1" + port, code: http.StatusOK},
		{host: "[::1]" + port, code: http.StatusOK},
		{host: "10.1.2.3" + port, code: http.StatusOK},
		{host: "gwsync.internal" + port, code: http.StatusOK},
	} {
		for _, path := range []string{"/v1/diff?gateway=gw1", "/v1/status", "/v1/resync"} {
			code, _, b := send(t, base, request{method: "GET", path: path, host: tc.host})
			if code != tc.code {
				t.Fatalf("GET %s with Host %q: %d %s, want %d", path, tc.host, code, b, tc.code)
			}
			if code == http.StatusForbidden && !strings.Contains(errorOf(t, b), "Host") {
				t.Fatalf("refusal does not name the Host check: %s", b)
			}
		}
	}
	if got := len(ctrl.Calls()); got != 6 {
		t.Fatalf("diffs run: %d, want 6 (one per allowed Host)", got)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, b := send(t, base, request{method: "GET", path: path, host: "prometheus.monitoring.svc:9310"}); code != http.StatusOK {
			t.Fatalf("GET %s with a service name as Host: %d %s", path, code, b)
		}
	}
}

// TestServer_TrailingGarbageRefused: a body is one JSON document.
func TestServer_TrailingGarbageRefused(t *testing.T) {
	ctrl := admintest.NewFake("gw1")
	base := fakeServer(t, ctrl, nil)
	for _, body := range []string{`{"gateway":"gw1"} x`, `{"gateway":"gw1"}{"force":true}`, `{"gateway":"gw1"}]`} {
		code, _, b := send(t, base, request{method: "POST", path: "/v1/resync", body: body, header: jsonHeader})
		if code != http.StatusBadRequest || !strings.Contains(errorOf(t, b), "after the JSON body") {
			t.Fatalf("body %q: %d %s, want 400 naming the trailing data", body, code, b)
		}
	}
	if n := len(ctrl.Calls()); n != 0 {
		t.Fatalf("refused requests ran %d syncs", n)
	}
	code, _, b := send(t, base, request{method: "POST", path: "/v1/resync", body: "{\"gateway\":\"gw1\"}\r\n \n", header: jsonHeader})
	if code != http.StatusAccepted {
		t.Fatalf("body with trailing white space: %d %s", code, b)
	}
}

// TestServer_BodyLimit: an oversized body is a 413, not read to its end.
func TestServer_BodyLimit(t *testing.T) {
	ctrl := admintest.NewFake("gw1")
	base := fakeServer(t, ctrl, nil)
	body := `{"gateway":"gw1","service":"` + strings.Repeat("a", 1<<20) + `"}`
	code, _, b := send(t, base, request{method: "POST", path: "/v1/resync", body: body, header: jsonHeader})
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(errorOf(t, b), "bytes") {
		t.Fatalf("1 MiB body: %d %s, want 413 naming the limit", code, b)
	}
}

// TestServer_BearerSchemeIsCaseInsensitive (RFC 9110: auth schemes are
// case-insensitive).
func TestServer_BearerSchemeIsCaseInsensitive(t *testing.T) {
	const tok = "t0ken"
	base := fakeServer(t, admintest.NewFake("gw1"), func(o *admin.Options) { o.Token = tok })
	for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "Bearer   " + tok} {
		if code, _, b := send(t, base, request{method: "GET", path: "/v1/resync", header: map[string]string{"Authorization": h}}); code != http.StatusOK {
			t.Fatalf("Authorization %q: %d %s", h, code, b)
		}
	}
	for _, h := range []string{"Basic " + tok, tok, "Bearer", "Bearer " + tok + "x"} {
		code, hdr, b := send(t, base, request{method: "GET", path: "/v1/resync", header: map[string]string{"Authorization": h}})
		if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
			t.Fatalf("Authorization %q: %d %s, want 401 with WWW-Authenticate", h, code, b)
		}
	}
}

// TestServer_WrongMethod: a known path with another method is a 405 that
// lists the allowed ones; an unknown path stays a 404.
func TestServer_WrongMethod(t *testing.T) {
	base := fakeServer(t, admintest.NewFake("gw1"), nil)
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{method: "DELETE", path: "/v1/status", code: http.StatusMethodNotAllowed, allow: "GET, HEAD"},
		{method: "PUT", path: "/v1/resync", code: http.StatusMethodNotAllowed, allow: "GET, HEAD, POST"},
		{method: "POST", path: "/v1/diff", code: http.StatusMethodNotAllowed, allow: "GET, HEAD"},
		{method: "DELETE", path: "/v1/resync/0123456789ab", code: http.StatusMethodNotAllowed, allow: "GET, HEAD"},
		{method: "POST", path: "/metrics", code: http.StatusMethodNotAllowed, allow: "GET, HEAD"},
		{method: "GET", path: "/v1/nothing", code: http.StatusNotFound},
		{method: "DELETE", path: "/v1/nothing", code: http.StatusNotFound},
	} {
		code, hdr, b := send(t, base, request{method: tc.method, path: tc.path})
		if code != tc.code || hdr.Get("Allow") != tc.allow {
			t.Fatalf("%s %s: %d, Allow %q; want %d, Allow %q", tc.method, tc.path, code, hdr.Get("Allow"), tc.code, tc.allow)
		}
		if e := errorOf(t, b); !strings.Contains(e, tc.method+" "+tc.path) {
			t.Fatalf("%s %s: error %q does not name the request", tc.method, tc.path, e)
		}
	}
}

// TestServer_HeaderTooLarge: an over-long header (128 KiB: far more than a
// token and a browser's cookies) is answered 431.
func TestServer_HeaderTooLarge(t *testing.T) {
	base := fakeServer(t, admintest.NewFake("gw1"), nil)
	conn := dial(t, base)
	big := strings.Repeat("a", 128<<10)
	go func() { // the server may stop reading once it has seen enough
		fmt.Fprintf(conn, "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: %s\r\n\r\n", big)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to an over-long header: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("over-long header: %d, want 431", resp.StatusCode)
	}
	// A header within the limit is served.
	code, _, b := send(t, base, request{method: "GET", path: "/v1/status", header: map[string]string{"X-Padding": strings.Repeat("a", 8<<10)}})
	if code != http.StatusOK {
		t.Fatalf("header within the limit: %d %s", code, b)
	}
}

// TestServer_Timeouts: a client that stalls in the header, in the body or
// between requests is disconnected (each bound set short here).
func TestServer_Timeouts(t *testing.T) {
	base := fakeServer(t, admintest.NewFake("gw1"), func(o *admin.Options) {
		o.ReadHeaderTimeout, o.ReadTimeout, o.IdleTimeout = 200*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	})
	t.Run("stalled header", func(t *testing.T) {
		conn := dial(t, base)
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
		closedWithin(t, conn, 5*time.Second)
	})
	t.Run("stalled body", func(t *testing.T) {
		conn := dial(t, base)
		fmt.Fprint(conn, "POST /v1/resync HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
		got := closedWithin(t, conn, 5*time.Second)
		if !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.Contains(got, "request body not received in time") {
			t.Fatalf("answer to a stalled body: %q, want 408", got)
		}
	})
	t.Run("idle connection", func(t *testing.T) {
		conn := dial(t, base)
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		rd := bufio.NewReader(conn)
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		closedWithin(t, &readerConn{Conn: conn, r: rd}, 5*time.Second)
	})
}

// TestServer_PanickingResyncIsAFailure: a reconcile that panics fails its
// resync (the panic logged), and the server goes on serving.
func TestServer_PanickingResyncIsAFailure(t *testing.T) {
	ctrl := admintest.NewFake("gw1", "gw2")
	ctrl.SyncFn = func(_ context.Context, req syncer.Request) (syncer.Result, error) {
		if req.Gateway == "gw1" {
			panic("boom in gw1")
		}
		return syncer.Result{Gateway: req.Gateway, Complete: true, Adds: 1}, nil
	}
	logs := &logBuffer{}
	base := fakeServer(t, ctrl, func(o *admin.Options) { o.Logger = newLogger(logs) })
	code, _, b := send(t, base, request{method: "POST", path: "/v1/resync", body: `{}`, header: jsonHeader})
	if code != http.StatusAccepted {
		t.Fatalf("resync: %d %s", code, b)
	}
	rec := waitRecord(t, base, decodeAs[admin.Resync](t, b).ID)
	if rec.State != admin.StateFailed || rec.Gateways[0].State != admin.StateFailed || rec.Gateways[1].State != admin.StateSucceeded ||
		len(rec.Gateways[0].Errors) != 1 || !strings.Contains(rec.Gateways[0].Errors[0], "panic") || rec.Adds != 1 {
		t.Fatalf("resync after a panic = %+v", rec)
	}
	if l := logs.String(); !strings.Contains(l, "boom in gw1") || !strings.Contains(l, "goroutine") {
		t.Fatalf("the panic and its stack are not logged:\n%s", l)
	}
	if code, _, b := send(t, base, request{method: "GET", path: "/v1/status"}); code != http.StatusOK {
		t.Fatalf("status after a panic: %d %s", code, b)
	}
}

// TestServer_PanickingDiffIsAnError: a dry run that panics answers 500.
func TestServer_PanickingDiffIsAnError(t *testing.T) {
	ctrl := admintest.NewFake("gw1")
	ctrl.SyncFn = func(context.Context, syncer.Request) (syncer.Result, error) { panic("boom in a dry run") }
	logs := &logBuffer{}
	base := fakeServer(t, ctrl, func(o *admin.Options) { o.Logger = newLogger(logs) })
	code, _, b := send(t, base, request{method: "GET", path: "/v1/diff?gateway=gw1"})
	if code != http.StatusInternalServerError || !strings.Contains(errorOf(t, b), "panic") {
		t.Fatalf("diff that panics: %d %s, want 500", code, b)
	}
	if !strings.Contains(logs.String(), "boom in a dry run") {
		t.Fatalf("panic not logged:\n%s", logs.String())
	}
}

func errorOf(t *testing.T, body string) string {
	t.Helper()
	var e admin.ErrorResponse
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("answer is not a JSON error: %q: %v", body, err)
	}
	return e.Error
}

func decodeAs[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, body, err)
	}
	return v
}

// waitRecord polls a resync record until it has ended.
func waitRecord(t *testing.T, base, id string) admin.Resync {
	t.Helper()
	var rec admin.Resync
	harness.Eventually(t, 10*time.Second, func() error {
		code, _, b := send(t, base, request{method: "GET", path: "/v1/resync/" + id})
		if code != http.StatusOK {
			return fmt.Errorf("GET resync %s: %d %s", id, code, b)
		}
		rec = decodeAs[admin.Resync](t, b)
		if !rec.Ended() {
			return fmt.Errorf("resync %s still %s", id, rec.State)
		}
		return nil
	})
	return rec
}

func waitFakeSyncs(t *testing.T, ctrl *admintest.Fake, n int) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, func() error {
		if got := len(ctrl.Calls()); got != n {
			return fmt.Errorf("%d syncs, want %d", got, n)
		}
		return nil
	})
}

func dial(t *testing.T, base string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedWithin reads until the server closes conn and returns what it
// sent; it fails the test if conn is still open after d.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s (read %q)", d, b)
	}
	return string(b)
}

// readerConn reads through a bufio.Reader that already holds some of conn.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestServer_Pprof: Go's profiles are served under /debug/pprof/, guarded
// like resync (the admin token), so a slow cycle can be profiled in
// production; without the token they are refused.
func TestServer_Pprof(t *testing.T) {
	const tok = "t0ken"
	base := fakeServer(t, admintest.NewFake("gw1"), func(o *admin.Options) { o.Token = tok })
	auth := map[string]string{"Authorization": "Bearer " + tok}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1"} {
		code, _, b := send(t, base, request{method: "GET", path: path, header: auth})
		if code != http.StatusOK || len(b) == 0 {
			t.Errorf("GET %s with the token: %d, %d bytes", path, code, len(b))
		}
		if code, _, _ := send(t, base, request{method: "GET", path: path}); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
	}
}
