package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/sdk/freeport"
	"github.com/hashicorp/go-uuid"

	"github.com/gwsync/gwsync/config"
)

const (
	// StartTimeout bounds one server start (process up, leader elected, own
	// node in the catalog). A warm start takes well under a second; the
	// margin is for two cores shared with other test binaries.
	StartTimeout = 30 * time.Second
	// CallTimeout is the deadline of every Consul call the harness makes.
	CallTimeout = 10 * time.Second
	// logTailLines is how much of a server's log a failed test prints.
	logTailLines = 60
)

// Server is one single-server Consul cluster (one DC) run as a dev agent.
// Its ports stay the same for its whole life, across Restart.
type Server struct {
	// DC is the server's datacenter name.
	DC string
	// NodeName is the server's node name (in WAN gossip: NodeName.DC).
	NodeName string
	// NodeID is kept across restarts, so a restarted server is the same
	// member to its WAN peers.
	NodeID string

	bin   string
	token string
	hcl   []string
	ports serverPorts
	log   *tailBuffer
	api   *api.Client
	// acl and tls are set by WithACL and WithTLS; httpc makes the
	// harness's raw calls (TLS-aware when tls is set).
	acl        *aclSettings
	tls        *CA
	serverCert certPair
	httpc      *http.Client
	// dir is the agent's working directory, its own: an agent writes
	// files relative to it (with ACLs, the tokens set through the API go
	// to acl-tokens.json), and none may land in the source tree.
	dir string

	mu   sync.Mutex
	proc *process
}

type serverPorts struct{ http, dns, serfLAN, serfWAN, server int }

// Option adjusts a server before its first start.
type Option func(*Server)

// WithNodeName sets the node name (default "consul-<dc>").
func WithNodeName(name string) Option { return func(s *Server) { s.NodeName = name } }

// WithHCL adds an agent configuration fragment (for example an acl block).
func WithHCL(hcl string) Option { return func(s *Server) { s.hcl = append(s.hcl, hcl) } }

// WithToken sets the ACL token the harness's helpers and Client use; set it
// with WithHCL enabling ACLs and making it the initial management token
// (WithACL does both).
func WithToken(token string) Option { return func(s *Server) { s.token = token } }

// WithTLS serves the HTTP API over HTTPS only, on the port HTTPAddr names
// (plain HTTP is off), with a server certificate of the server's DC issued
// by ca; incoming and outgoing connections (API and server RPC) must
// present a certificate of ca, and servers verify each other's names. The
// harness's helpers and Client use ca's client certificate.
func WithTLS(ca *CA) Option { return func(s *Server) { s.tls = ca } }

// StartServer starts a one-server cluster for datacenter dc and returns once
// it has elected itself leader and registered its own node. The server is
// killed through t.Cleanup.
//
// Its agent sends no network coordinates (disable_coordinates): an idle
// server otherwise appends a Raft entry for its own coordinate every 15-20 s,
// which would make "the Raft index does not move in steady state" flaky.
// Federation servers keep them (the prepared query's nearest_n uses them).
func StartServer(t testing.TB, dc string, opts ...Option) *Server {
	t.Helper()
	s := newServer(t, dc, append([]Option{WithHCL("disable_coordinates = true")}, opts...)...)
	if err := s.start(); err != nil {
		t.Fatalf("harness: start consul %s: %v", dc, err)
	}
	return s
}

// newServer prepares a server (binary, ports, cleanup) without starting it;
// it must run on the test goroutine, start may run on any.
func newServer(t testing.TB, dc string, opts ...Option) *Server {
	t.Helper()
	bin := ConsulBin(t)
	id, err := uuid.GenerateUUID()
	if err != nil {
		t.Fatalf("harness: node id: %v", err)
	}
	p := freeport.GetN(t, 5) // returned through t.Cleanup, after the kill below
	s := &Server{
		DC:       dc,
		NodeName: "consul-" + dc,
		NodeID:   id,
		bin:      bin,
		ports:    serverPorts{http: p[0], dns: p[1], serfLAN: p[2], serfWAN: p[3], server: p[4]},
		log:      &tailBuffer{},
	}
	for _, o := range opts {
		o(s)
	}
	s.dir = t.TempDir() // removed after the kill below (cleanups run last first)
	s.httpc = plainHTTP
	if s.tls != nil {
		s.serverCert.cert, s.serverCert.key = s.tls.ServerCert(t, dc)
		s.httpc = &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: s.tls.tlsConfig(t)}}
	}
	s.api = s.newClient(t)
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("harness: last lines of consul %s (%s) log:\n%s", s.DC, s.HTTPAddr(), s.log.tail(logTailLines))
		}
	})
	return s
}

// HTTPAddr returns the HTTP API address, "127.0.0.1:port" (HTTPS only for
// a server started WithTLS); it stays the same across Restart.
func (s *Server) HTTPAddr() string { return addr(s.ports.http) }

// Scheme is the API's scheme: "https" for a server started WithTLS, else
// "http".
func (s *Server) Scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}

// URL is the API's base URL, "http(s)://127.0.0.1:port".
func (s *Server) URL() string { return s.Scheme() + "://" + s.HTTPAddr() }

// DNSAddr returns the DNS address (UDP and TCP), "127.0.0.1:port".
func (s *Server) DNSAddr() string { return addr(s.ports.dns) }

// WANAddr returns the serf WAN address other DCs join, "127.0.0.1:port".
func (s *Server) WANAddr() string { return addr(s.ports.serfWAN) }

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// Client returns the server's API client, built from explicit
// configuration (address, scheme, the WithToken or WithACL token, the
// WithTLS client certificate) the way gwsync builds its own: nothing comes
// from CONSUL_HTTP_* variables. It is one client per server (one
// connection pool): a test that polls through a new client each time
// would pile up idle connections until Consul refuses more than
// http_max_conns_per_client (429).
func (s *Server) Client(t testing.TB) *api.Client {
	t.Helper()
	return s.api
}

// ClientWithToken is Client with another ACL token ("" for anonymous).
func (s *Server) ClientWithToken(t testing.TB, token string) *api.Client {
	t.Helper()
	c, err := s.Cluster(t, token).NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatalf("harness: client for %s: %v", s.HTTPAddr(), err)
	}
	return c
}

// Cluster is how gwsync's configuration reaches the server with token:
// address, scheme and, for a server started WithTLS, the CA and client
// certificate.
func (s *Server) Cluster(t testing.TB, token string) config.Cluster {
	t.Helper()
	c := config.Cluster{Address: s.HTTPAddr(), Scheme: s.Scheme(), Token: token, Timeout: CallTimeout}
	if s.tls != nil {
		c.TLS = s.tls.ClientTLS(t)
	}
	return c
}

func (s *Server) newClient(t testing.TB) *api.Client {
	t.Helper()
	return s.ClientWithToken(t, s.token)
}

// Running reports whether the server's process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}

// Stop kills the server (SIGKILL, no graceful leave) and waits for it to
// exit, so its HTTP port refuses connections when Stop returns. Stopping a
// stopped server does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.kill()
}

// Restart kills the server and starts a new, empty one with the same DC,
// node name, node ID and ports, as a restarted dev server comes back; it
// returns once the new server is leader. Federation.Restart also re-joins
// the WAN.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.kill()
	s.Start(t)
}

// Start starts a server that Stop stopped again, new and empty, as
// Restart does; it returns once the server is leader. Stop then Start is
// Restart with the moment in between known: nothing read after Stop
// returned was read from the old server.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("harness: restart consul %s: %v", s.DC, err)
	}
}

// RaftLastIndex returns the server's last Raft log index (agent/self
// Stats.raft.last_log_index): it moves on every write, even one that
// changes nothing in the state store.
func (s *Server) RaftLastIndex(t testing.TB) uint64 {
	t.Helper()
	idx, err := s.raftLastIndex()
	if err != nil {
		t.Fatalf("harness: consul %s: %v", s.DC, err)
	}
	return idx
}

func (s *Server) raftLastIndex() (uint64, error) {
	ctx, cancel := callContext()
	defer cancel()
	var self struct {
		Stats struct {
			Raft struct {
				LastLogIndex string `json:"last_log_index"`
			} `json:"raft"`
		}
	}
	if _, err := s.api.Raw().Query("/v1/agent/self", &self, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return 0, fmt.Errorf("agent/self: %w", err)
	}
	idx, err := strconv.ParseUint(self.Stats.Raft.LastLogIndex, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("agent/self raft last_log_index %q: %w", self.Stats.Raft.LastLogIndex, err)
	}
	return idx, nil
}

func (s *Server) args() []string {
	args := []string{
		"agent", "-dev", // in-memory data, fast Raft and gossip timings
		"-datacenter", s.DC,
		"-node", s.NodeName,
		"-node-id", s.NodeID,
		"-bind", "127.0.0.1",
		"-client", "127.0.0.1",
		"-dns-port", strconv.Itoa(s.ports.dns),
		"-serf-lan-port", strconv.Itoa(s.ports.serfLAN),
		"-serf-wan-port", strconv.Itoa(s.ports.serfWAN),
		"-server-port", strconv.Itoa(s.ports.server),
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
		"-log-level", "info",
		"-hcl", "connect { enabled = false }",
		"-hcl", "ui_config { enabled = false }",
	}
	if s.tls != nil {
		args = append(args, "-http-port", "-1", "-https-port", strconv.Itoa(s.ports.http),
			"-hcl", tlsHCL(s.tls.CAFile, s.serverCert.cert, s.serverCert.key))
	} else {
		args = append(args, "-http-port", strconv.Itoa(s.ports.http), "-https-port", "-1")
	}
	if s.acl != nil {
		args = append(args, "-hcl", s.aclHCL())
	}
	for _, h := range s.hcl {
		args = append(args, "-hcl", h)
	}
	return args
}

func (s *Server) start() error {
	p, err := startProcessIn(s.dir, s.bin, s.args(), s.log)
	if err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	err = poll(StartTimeout, func() error {
		if p.exited() {
			return permanentError{fmt.Errorf("consul exited: %v", p.err)}
		}
		return s.ready()
	})
	if err != nil {
		s.kill()
		return err // the cleanup prints the log tail of a failed test
	}
	return nil
}

// ready: a leader is elected and the leader has registered this node, so
// catalog reads and writes work. An ACL secondary cannot resolve any token
// before it joins the primary over the WAN, so for it a leader is enough
// here; the federation's own checks cover the rest once it has joined.
func (s *Server) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	leader, err := s.api.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("status/leader: %w", err)
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	if s.secondary() {
		return nil
	}
	node, _, err := s.api.Catalog().Node(s.NodeName, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("catalog/node: %w", err)
	}
	if node == nil || node.Node == nil {
		return errors.New("own node not in the catalog yet")
	}
	return nil
}

func (s *Server) kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

func callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), CallTimeout)
}

// plainHTTP is for calls the api package offers without a context or
// without query parameters; it takes no proxy from the environment.
var plainHTTP = &http.Client{Transport: &http.Transport{Proxy: nil}}

// getJSON GETs pathQuery ("/v1/...?..."), decoding a 200 answer into out.
func (s *Server) getJSON(pathQuery string, out any) error {
	return s.do(http.MethodGet, pathQuery, out)
}

// agentJSON GETs an /v1/agent path with the agent token (see WithACL).
func (s *Server) agentJSON(pathQuery string, out any) error {
	return s.doToken(http.MethodGet, pathQuery, s.agentToken(), out)
}

// do sends one bodiless request with the harness token (and, WithTLS, its
// client certificate) and a CallTimeout deadline; out (if not nil)
// receives the JSON answer.
func (s *Server) do(method, pathQuery string, out any) error {
	return s.doToken(method, pathQuery, s.token, out)
}

func (s *Server) doToken(method, pathQuery, token string, out any) error {
	ctx, cancel := callContext()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.URL()+pathQuery, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := s.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: HTTP %d: %s", method, pathQuery, resp.StatusCode, bytes.TrimSpace(body))
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, pathQuery, err)
	}
	return nil
}
