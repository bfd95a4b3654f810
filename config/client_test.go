package config

import (
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Consul stand-in that records what reaches it. The test is
// about which headers and parameters the client sends, not about Consul.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(req.Context()))
	r.mu.Unlock()
	w.Header().Set("X-Consul-Index", "1")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

func (r *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request reached the server")
	}
	return r.reqs[len(r.reqs)-1]
}

// setConsulEnv sets every CONSUL_HTTP_* style variable api.NewClient reads
// to values that must never reach the server.
func setConsulEnv(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "env.token")
	if err := os.WriteFile(tokenFile, []byte("leaked-token-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSUL_HTTP_TOKEN", "leaked-token")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", tokenFile)
	t.Setenv("CONSUL_NAMESPACE", "leaked-ns")
	t.Setenv("CONSUL_PARTITION", "leaked-partition")
	t.Setenv("CONSUL_HTTP_AUTH", "leaked-user:leaked-pass")
	t.Setenv("CONSUL_HTTP_ADDR", "127.0.0.1:1") // nothing listens there
	t.Setenv("CONSUL_HTTP_SSL", "true")
	t.Setenv("CONSUL_CACERT", filepath.Join(t.TempDir(), "absent-ca.pem"))
}

func TestCluster_NewClient_NoEnvLeak(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		wantToken string // "" means no X-Consul-Token header at all
	}{
		{name: "no token configured", token: "", wantToken: ""},
		{name: "configured token wins over CONSUL_HTTP_TOKEN_FILE", token: "mine", wantToken: "mine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setConsulEnv(t)
			rec := &recorder{}
			srv := httptest.NewServer(rec)
			t.Cleanup(srv.Close)
			u, _ := url.Parse(srv.URL)

			c := Cluster{Address: u.Host, Scheme: "http", Token: tt.token, Timeout: time.Second}
			client, err := c.NewClient(ClientOptions{})
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			if _, _, err := client.Catalog().Services(nil); err != nil {
				t.Fatalf("request to the configured address failed (env address or scheme leaked?): %v", err)
			}
			req := rec.last(t)
			if got := req.Header.Get("X-Consul-Token"); got != tt.wantToken {
				t.Errorf("X-Consul-Token = %q, want %q", got, tt.wantToken)
			}
			if _, ok := req.Header["X-Consul-Token"]; tt.wantToken == "" && ok {
				t.Errorf("X-Consul-Token header present (empty) though no token is configured")
			}
			if got := req.Header.Get("Authorization"); got != "" {
				t.Errorf("Authorization = %q, want none", got)
			}
			q := req.URL.Query()
			for _, p := range []string{"ns", "partition", "token"} {
				if q.Has(p) {
					t.Errorf("query parameter %s=%q leaked from the environment", p, q.Get(p))
				}
			}
			for name, vals := range req.Header {
				for _, v := range vals {
					if strings.Contains(v, "leaked") {
						t.Errorf("header %s: %q leaked from the environment", name, v)
					}
				}
			}
			if strings.Contains(req.URL.RawQuery, "leaked") {
				t.Errorf("query %q leaked from the environment", req.URL.RawQuery)
			}
		})
	}
}

func TestCluster_NewClient_TLS(t *testing.T) {
	setConsulEnv(t)
	rec := &recorder{}
	srv := httptest.NewUnstartedServer(rec)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case logs a handshake error
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("verifies the server with ca_file", func(t *testing.T) {
		c := Cluster{Address: u.Host, Scheme: "https", Token: "tls-tok", TLS: TLS{Enabled: true, CAFile: ca}}
		client, err := c.NewClient(ClientOptions{MaxConnsPerHost: 2})
		if err != nil {
			t.Fatalf("NewClient: %v", err)
		}
		if _, _, err := client.Catalog().Services(nil); err != nil {
			t.Fatalf("https request: %v", err)
		}
		if got := rec.last(t).Header.Get("X-Consul-Token"); got != "tls-tok" {
			t.Errorf("X-Consul-Token = %q", got)
		}
	})
	t.Run("without the CA the server is not trusted", func(t *testing.T) {
		c := Cluster{Address: u.Host, Scheme: "https", TLS: TLS{Enabled: true}}
		client, err := c.NewClient(ClientOptions{})
		if err != nil {
			t.Fatalf("NewClient: %v", err)
		}
		if _, _, err := client.Catalog().Services(nil); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("request to an untrusted server: %v, want a certificate error", err)
		}
	})
	errCases := []struct {
		name string
		tls  TLS
		msg  string
	}{
		{name: "missing ca_file", tls: TLS{Enabled: true, CAFile: filepath.Join(dir, "absent.pem")}, msg: "tls ca_file"},
		{name: "ca_file without certificates", tls: TLS{Enabled: true, CAFile: garbage}, msg: "no PEM certificates found"},
		{name: "bad client key pair", tls: TLS{Enabled: true, CertFile: garbage, KeyFile: garbage}, msg: "tls cert_file/key_file"},
	}
	for _, tt := range errCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Cluster{Address: u.Host, Scheme: "https", TLS: tt.tls}.NewClient(ClientOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("NewClient error %v, want one containing %q", err, tt.msg)
			}
		})
	}
}

// countingTransport counts the requests and response bytes it carries.
type countingTransport struct {
	next   http.RoundTripper
	mu     sync.Mutex
	reqs   int
	tokens []string
	bytes  int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs++
	c.tokens = append(c.tokens, r.Header.Get("X-Consul-Token"))
	if resp != nil {
		c.bytes += max(resp.ContentLength, 0)
	}
	return resp, err
}

func TestCluster_NewClient_WrapTransport(t *testing.T) {
	setConsulEnv(t)
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)

	counter := &countingTransport{}
	wrap := func(next http.RoundTripper) http.RoundTripper {
		counter.next = next
		return counter
	}
	client, err := Cluster{Address: u.Host, Scheme: "http", Token: "pinned"}.NewClient(ClientOptions{WrapTransport: wrap})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	for range 3 {
		if _, _, err := client.Catalog().Services(nil); err != nil {
			t.Fatalf("request: %v", err)
		}
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if counter.reqs != 3 || counter.bytes != 3*int64(len("{}")) {
		t.Errorf("wrapper saw %d requests, %d bytes; want 3 and %d", counter.reqs, counter.bytes, 3*len("{}"))
	}
	for _, tok := range counter.tokens {
		if tok != "pinned" {
			t.Errorf("wrapper saw token %q, want the pinned one", tok)
		}
	}
	if got := rec.last(t).Header.Get("X-Consul-Token"); got != "pinned" {
		t.Errorf("server got token %q", got)
	}

	_, err = Cluster{Address: u.Host}.NewClient(ClientOptions{WrapTransport: func(http.RoundTripper) http.RoundTripper { return nil }})
	if err == nil || !strings.Contains(err.Error(), "WrapTransport returned no transport") {
		t.Errorf("NewClient with a nil wrapper result: %v", err)
	}
}
