package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/consul/api"
)

// ClientOptions tunes the HTTP transport of a cluster client.
type ClientOptions struct {
	// MaxConnsPerHost caps connections to one server; 0 means
	// DefaultMaxConnsPerHost.
	MaxConnsPerHost int
	// WrapTransport, if set, wraps the client's transport, for example to
	// count the bytes its event watchers read. It sees every request with
	// the cluster's token already pinned, closest to the wire.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// NewClient builds one long-lived Consul API client for the cluster.
//
// api.NewClient silently fills empty fields from CONSUL_HTTP_* environment
// variables (token, token file, TLS files, namespace). gwsync talks to several
// clusters at once, so a token meant for one must never reach another: the
// client gets its own http.Client, and a transport wrapper sets exactly the
// configured token on every request and removes whatever else asked for one.
func (c Cluster) NewClient(opts ClientOptions) (*api.Client, error) {
	tlsCfg, err := c.TLS.clientConfig()
	if err != nil {
		return nil, err
	}
	maxConns := opts.MaxConnsPerHost
	if maxConns <= 0 {
		maxConns = DefaultMaxConnsPerHost
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		MaxConnsPerHost:       maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     false,
	}
	var next http.RoundTripper = transport
	if opts.WrapTransport != nil {
		if next = opts.WrapTransport(transport); next == nil {
			return nil, fmt.Errorf("consul client for %s: WrapTransport returned no transport", c.Address)
		}
	}
	scheme := c.Scheme
	if scheme == "" {
		scheme = "http"
	}
	cfg := &api.Config{
		Address:    c.Address,
		Scheme:     scheme,
		Token:      c.Token,
		HttpClient: &http.Client{Transport: &explicitAuth{token: c.Token, next: next}},
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", c.Address, err)
	}
	return client, nil
}

// explicitAuth pins the ACL token and strips enterprise scoping that
// api.NewClient may have taken from the environment.
type explicitAuth struct {
	token string
	next  http.RoundTripper
}

func (e *explicitAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Del("Authorization")
	if e.token == "" {
		r.Header.Del("X-Consul-Token")
	} else {
		r.Header.Set("X-Consul-Token", e.token)
	}
	q := r.URL.Query()
	if q.Has("ns") || q.Has("partition") {
		q.Del("ns")
		q.Del("partition")
		r.URL.RawQuery = q.Encode()
	}
	return e.next.RoundTrip(r)
}

func (t TLS) clientConfig() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	out := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificates found", t.CAFile)
		}
		out.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file/key_file: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}
