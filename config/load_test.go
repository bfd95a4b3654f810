package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gwsync/gwsync/mirror"
)

func envMap(m map[string]string) LookupEnv {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func TestLoad_Full(t *testing.T) {
	env := envMap(map[string]string{"EDGE_GZ_TOKEN": " gz-secret\n", "EDGE_GZ_READ_TOKEN": "gz-read"})
	cfg, err := Load(filepath.Join("testdata", "full.hcl"), env)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	// Specs are checked by behaviour, the rest by value.
	for i, g := range cfg.Gateways {
		if g.Spec == nil {
			t.Fatalf("gateway %s: no parsed schedule", g.Name)
		}
		from := time.Date(2025, 3, 3, 10, 0, 30, 0, time.UTC)
		if next := g.Spec.Next(from); next.Sub(from) > g.MaxGap || next.Sub(from) <= 0 {
			t.Errorf("gateway %s: Spec.Next is %s after, beyond its longest gap %s", g.Name, next.Sub(from), g.MaxGap)
		}
		cfg.Gateways[i].Spec = nil
	}
	selected := Services{Include: []string{"*"}, Exclude: []string{"consul", "internal-*"}, Tags: []string{"public"}}
	want := &Config{
		Public: Public{
			Cluster:          Cluster{Address: "127.0.0.1:8500", Scheme: "http", Token: "public-secret", Timeout: 5 * time.Second},
			ReadToken:        "public-read-secret",
			AllowStale:       true,
			MaxInFlightPerDC: 8,
			MaxConnsPerHost:  32,
			MaxStaleness:     1500 * time.Millisecond,
		},
		Query:    Query{Manage: true, Prefix: "gwsync-", OnlyPassing: true, NearestN: 3, Datacenters: []string{"dc2", "dc3"}, ShareWindow: 3 * time.Second, ConfiguredShareWindow: 3 * time.Second},
		Services: selected,
		Safety:   Safety{MaxDeleteFraction: 0.25, DeleteGuardMin: 10},
		Mirror:   Mirror{NodePrefix: "gws-", KVPrefix: "gwsync/", MarkerInterval: 30 * time.Second, ReadConcurrency: 8, MaxSyncAge: 30 * time.Minute, TxnConcurrency: 4},
		Gateways: []Gateway{
			{Name: "edge-bj", SourceDatacenter: "dc1", Schedule: "@every 15s", Period: 15 * time.Second, MaxGap: 15 * time.Second,
				Services:    Services{Include: []string{"web-*", "team/*"}, Exclude: []string{"consul"}},
				QueryPrefix: "local-",
				Dedicated:   Cluster{Address: "127.0.0.1:9500", Scheme: "http", Token: "edge-bj-secret", Timeout: 2 * time.Second},
				ReadToken:   "edge-bj-read-secret"},
			{Name: "edge-sh", SourceDatacenter: "dc2", Schedule: "*/1 * * * *", Period: time.Minute, MaxGap: time.Minute,
				Services: selected, QueryPrefix: "",
				Dedicated: Cluster{Address: "127.0.0.1:9501", Scheme: "https", Token: "inline-edge-sh", Timeout: DefaultTimeout,
					TLS: TLS{Enabled: true, ServerName: "consul.edge-sh"}},
				ReadToken: "inline-edge-sh-read"},
			{Name: "edge-gz", SourceDatacenter: "dc1", Schedule: DefaultSchedule, Period: 5 * time.Minute, MaxGap: 5 * time.Minute,
				Services: selected, QueryPrefix: "gwsync-",
				Dedicated: Cluster{Address: "127.0.0.1:9502", Scheme: "http", Token: "gz-secret", Timeout: DefaultTimeout},
				ReadToken: "gz-read"},
		},
		Admin:    Admin{Address: "127.0.0.1:9310", Token: "admin-secret"},
		Events:   Events{Enabled: true, Wait: 2 * time.Minute, Rate: 2.5, Burst: 20},
		Retry:    Retry{MinBackoff: 500 * time.Millisecond, MaxBackoff: time.Minute},
		Resolver: Resolver{MaxMarkerAge: 3 * time.Minute, SnapshotPath: filepath.Join("testdata", "snapshots", "%g.json"), MaxServices: 5000, IdleTimeout: 15 * time.Minute, PublicRate: 10},
		HA:       HA{ReplicaID: "gwsync-0", SessionTTL: 15 * time.Second, LockDelay: 2 * time.Second, TakeoverBound: 32 * time.Second},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config\n got %+v\nwant %+v", cfg, want)
	}
	if g, ok := cfg.Gateway("edge-sh"); !ok || g.SourceDatacenter != "dc2" {
		t.Errorf("Gateway(edge-sh) = %+v, %v", g, ok)
	}
	if _, ok := cfg.Gateway("nope"); ok {
		t.Error("Gateway(nope) found")
	}
	if got := cfg.SourceDatacenters(); !reflect.DeepEqual(got, []string{"dc1", "dc2"}) {
		t.Errorf("SourceDatacenters() = %v, want [dc1 dc2]", got)
	}
	if got := cfg.Query.Name("web"); got != "gwsync-web" {
		t.Errorf("Query.Name(web) = %q", got)
	}
	if got := cfg.Gateways[0].LocalQueryName("web"); got != "local-web" {
		t.Errorf("LocalQueryName(web) = %q", got)
	}
	if got := cfg.Resolver.SnapshotFile("edge-bj"); got != filepath.Join("testdata", "snapshots", "edge-bj.json") {
		t.Errorf("SnapshotFile(edge-bj) = %q", got)
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.hcl"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want an error wrapping os.ErrNotExist", err)
	}
}

// Every named default applies when its key (or its whole block) is absent.
func TestLoad_Defaults(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "minimal.hcl"), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	g := cfg.Gateways[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{name: "public scheme", got: cfg.Public.Scheme, want: "http"},
		{name: "public token", got: cfg.Public.Token, want: ""},
		{name: "public read_token", got: cfg.Public.ReadToken, want: ""},
		{name: "public timeout", got: cfg.Public.Timeout, want: DefaultTimeout},
		{name: "public allow_stale", got: cfg.Public.AllowStale, want: true},
		{name: "public max_in_flight_per_dc", got: cfg.Public.MaxInFlightPerDC, want: DefaultMaxInFlightPerDC},
		{name: "public max_conns_per_host", got: cfg.Public.MaxConnsPerHost, want: DefaultMaxConnsPerHost},
		{name: "public max_staleness", got: cfg.Public.MaxStaleness, want: DefaultMaxStaleness},
		{name: "public tls", got: cfg.Public.TLS, want: TLS{}},
		{name: "query manage", got: cfg.Query.Manage, want: true},
		{name: "query prefix", got: cfg.Query.Prefix, want: mirror.DefaultQueryPrefix},
		{name: "query only_passing", got: cfg.Query.OnlyPassing, want: true},
		{name: "query nearest_n", got: cfg.Query.NearestN, want: DefaultNearestN},
		{name: "query datacenters", got: cfg.Query.Datacenters, want: []string(nil)},
		{name: "query share_window", got: cfg.Query.ShareWindow, want: DefaultShareWindow},
		{name: "query configured share_window", got: cfg.Query.ConfiguredShareWindow, want: DefaultShareWindow},
		{name: "services include", got: cfg.Services.Include, want: []string{"*"}},
		{name: "services exclude", got: cfg.Services.Exclude, want: []string{"consul"}},
		{name: "services tags", got: cfg.Services.Tags, want: []string(nil)},
		{name: "safety max_delete_fraction", got: cfg.Safety.MaxDeleteFraction, want: DefaultMaxDeleteFraction},
		{name: "safety delete_guard_min", got: cfg.Safety.DeleteGuardMin, want: DefaultDeleteGuardMin},
		{name: "mirror node_prefix", got: cfg.Mirror.NodePrefix, want: mirror.DefaultNodePrefix},
		{name: "mirror kv_prefix", got: cfg.Mirror.KVPrefix, want: mirror.DefaultKVPrefix},
		{name: "mirror marker_interval", got: cfg.Mirror.MarkerInterval, want: mirror.DefaultMarkerInterval},
		{name: "mirror read_concurrency", got: cfg.Mirror.ReadConcurrency, want: DefaultReadConcurrency},
		{name: "mirror max_sync_age", got: cfg.Mirror.MaxSyncAge, want: mirror.DefaultMaxSyncAge},
		{name: "mirror txn_concurrency", got: cfg.Mirror.TxnConcurrency, want: DefaultTxnConcurrency},
		{name: "gateway schedule", got: g.Schedule, want: DefaultSchedule},
		{name: "gateway period", got: g.Period, want: 5 * time.Minute},
		{name: "gateway max gap", got: g.MaxGap, want: 5 * time.Minute},
		{name: "gateway services", got: g.Services, want: cfg.Services},
		{name: "gateway query_prefix", got: g.QueryPrefix, want: mirror.DefaultQueryPrefix},
		{name: "gateway read_token", got: g.ReadToken, want: ""},
		{name: "dedicated timeout", got: g.Dedicated.Timeout, want: DefaultTimeout},
		{name: "dedicated scheme", got: g.Dedicated.Scheme, want: "http"},
		{name: "admin address", got: cfg.Admin.Address, want: DefaultAdminAddress},
		{name: "admin token", got: cfg.Admin.Token, want: ""},
		{name: "events enabled", got: cfg.Events.Enabled, want: true},
		{name: "events wait", got: cfg.Events.Wait, want: DefaultEventsWait},
		{name: "events rate", got: cfg.Events.Rate, want: DefaultEventsRate},
		{name: "events burst", got: cfg.Events.Burst, want: DefaultEventsBurst},
		{name: "retry min_backoff", got: cfg.Retry.MinBackoff, want: DefaultMinBackoff},
		{name: "retry max_backoff", got: cfg.Retry.MaxBackoff, want: DefaultMaxBackoff},
		{name: "resolver max_marker_age", got: cfg.Resolver.MaxMarkerAge, want: mirror.DefaultMaxMarkerAge},
		{name: "resolver snapshot_path", got: cfg.Resolver.SnapshotPath, want: ""},
		{name: "resolver max_services", got: cfg.Resolver.MaxServices, want: DefaultMaxServices},
		{name: "resolver idle_timeout", got: cfg.Resolver.IdleTimeout, want: DefaultIdleTimeout},
		{name: "resolver public_rate", got: cfg.Resolver.PublicRate, want: DefaultPublicRate},
		{name: "ha replica_id", got: cfg.HA.ReplicaID, want: ""},
		{name: "ha session_ttl", got: cfg.HA.SessionTTL, want: DefaultSessionTTL},
		{name: "ha lock_delay", got: cfg.HA.LockDelay, want: DefaultLockDelay},
		{name: "ha takeover bound", got: cfg.HA.TakeoverBound, want: 2*DefaultSessionTTL + DefaultLockDelay},
		{name: "warnings", got: len(cfg.Warnings), want: 0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if g.Spec == nil {
		t.Error("default schedule not parsed")
	}
	// The defaults satisfy the cross-key rules with room to spare, and the
	// takeover bound stays within the 30s the project promises.
	if cfg.HA.TakeoverBound > 30*time.Second {
		t.Errorf("default takeover bound %s exceeds 30s", cfg.HA.TakeoverBound)
	}
	if cfg.Resolver.MaxMarkerAge <= 2*cfg.Mirror.MarkerInterval || cfg.Mirror.MaxSyncAge < 2*g.MaxGap {
		t.Errorf("defaults break their own rules: marker %s/%s, sync age %s/%s", cfg.Mirror.MarkerInterval, cfg.Resolver.MaxMarkerAge, cfg.Mirror.MaxSyncAge, g.MaxGap)
	}
	if cfg.Retry.MaxBackoff >= g.Period {
		t.Errorf("default max_backoff %s is not below the default schedule period %s", cfg.Retry.MaxBackoff, g.Period)
	}
}

// Values at the edges of their ranges are accepted, and explicit empty lists
// and a zero share window are kept rather than replaced by defaults.
func TestParse_Boundaries(t *testing.T) {
	src := `public {
  address = "https://[::1]:8501"
  max_in_flight_per_dc = 1000
  max_conns_per_host = 190
  allow_stale = false
}
query {
  manage = false
  share_window = "0s"
  failover { nearest_n = 0 }
}
services {
  include = ["web-*", "api"]
  exclude = []
}
safety {
  max_delete_fraction = 1
  delete_guard_min = 0
}
mirror { node_prefix = "" }
gateway "e_1" {
  source_datacenter = "dc-1_a"
  dedicated { address = "localhost:0" }
}
`
	cfg, err := Parse([]byte(src), "b.hcl", nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Public.Scheme != "https" || cfg.Public.Address != "[::1]:8501" {
		t.Errorf("public scheme/address = %q %q, want https [::1]:8501", cfg.Public.Scheme, cfg.Public.Address)
	}
	if cfg.Public.MaxInFlightPerDC != 1000 || cfg.Public.MaxConnsPerHost != 190 || cfg.Public.AllowStale {
		t.Errorf("public = %+v", cfg.Public)
	}
	if cfg.Query.Manage || cfg.Query.ShareWindow != 0 || cfg.Query.NearestN != 0 {
		t.Errorf("query = %+v", cfg.Query)
	}
	if !reflect.DeepEqual(cfg.Services.Include, []string{"web-*", "api"}) || cfg.Services.Exclude == nil || len(cfg.Services.Exclude) != 0 {
		t.Errorf("services = %#v: an explicit empty exclude must stay empty", cfg.Services)
	}
	if cfg.Safety != (Safety{MaxDeleteFraction: 1, DeleteGuardMin: 0}) {
		t.Errorf("safety = %+v", cfg.Safety)
	}
	if cfg.Mirror.NodePrefix != "" {
		t.Errorf("node_prefix = %q, want empty", cfg.Mirror.NodePrefix)
	}
}

// The new keys at both ends of their ranges are accepted as written.
func TestParse_BoundariesOfNewKeys(t *testing.T) {
	low := `public {
  address = "http://consul.example"
  max_staleness = "0s"
}
mirror {
  txn_concurrency = 1
  marker_interval = "1s"
  max_sync_age = "2s"
}
events {
  enabled = false
  wait = "1s"
  rate = 0.001
  burst = 1
}
retry {
  min_backoff = "1ms"
  max_backoff = "1ms"
}
resolver {
  max_marker_age = "21s" # > 2 x marker_interval, and >= worst-case takeover + marker_interval
  max_services = 1
  idle_timeout = "1ms"
  public_rate = 0.001
}
ha {
  replica_id = "a"
  session_ttl = "10s"
  lock_delay = "0s"
}
gateway "e" {
  source_datacenter = "dc1"
  schedule = "@every 1s"
  query_prefix = ""
  services {
    include = []
  }
  dedicated { address = "https://[::1]" }
}
`
	high := `public {
  address = "127.0.0.1:8500"
  max_staleness = "1h"
}
mirror { txn_concurrency = 8 }
events {
  wait = "10m"
  rate = 100
  burst = 1000
}
resolver {
  max_services = 1000000
  public_rate = 1e6
  max_marker_age = "3h" # a 1h session TTL needs a long marker age (the takeover rule)
}
ha {
  replica_id = "` + strings.Repeat("r.", 64) + `"
  session_ttl = "1h"
  lock_delay = "1m"
}
gateway "e" {
  source_datacenter = "dc1"
  dedicated { address = "127.0.0.1:8501" }
}
`
	cfg, err := Parse([]byte(low), "low.hcl", nil)
	if err != nil {
		t.Fatalf("Parse(low): %v", err)
	}
	g := cfg.Gateways[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"public address without port", cfg.Public.Address, "consul.example"},
		{"public max_staleness", cfg.Public.MaxStaleness, time.Duration(0)},
		{"mirror", cfg.Mirror.TxnConcurrency, 1},
		{"events", cfg.Events, Events{Enabled: false, Wait: time.Second, Rate: 0.001, Burst: 1}},
		{"retry", cfg.Retry, Retry{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}},
		{"resolver", cfg.Resolver, Resolver{MaxMarkerAge: 21 * time.Second, MaxServices: 1, IdleTimeout: time.Millisecond, PublicRate: 0.001}},
		{"ha", cfg.HA, HA{ReplicaID: "a", SessionTTL: 10 * time.Second, TakeoverBound: 20 * time.Second}},
		{"gateway query_prefix", g.QueryPrefix, ""},
		{"gateway local query name", g.LocalQueryName("web"), "web"},
		{"gateway services", g.Services, Services{Include: []string{}, Exclude: []string{"consul"}}},
		{"gateway period", g.Period, time.Second},
		{"dedicated", g.Dedicated, Cluster{Address: "[::1]", Scheme: "https", Timeout: DefaultTimeout}},
		{"share window", cfg.Query.ShareWindow, 500 * time.Millisecond},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("low %s = %+v, want %+v", c.name, c.got, c.want)
		}
	}
	cfg, err = Parse([]byte(high), "high.hcl", nil)
	if err != nil {
		t.Fatalf("Parse(high): %v", err)
	}
	checks = []struct {
		name      string
		got, want any
	}{
		{"public max_staleness", cfg.Public.MaxStaleness, time.Hour},
		{"mirror", cfg.Mirror.TxnConcurrency, 8},
		{"events", cfg.Events, Events{Enabled: true, Wait: 10 * time.Minute, Rate: 100, Burst: 1000}},
		{"resolver max_services", cfg.Resolver.MaxServices, 1000000},
		{"resolver public_rate", cfg.Resolver.PublicRate, 1e6},
		{"ha", cfg.HA, HA{ReplicaID: strings.Repeat("r.", 64), SessionTTL: time.Hour, LockDelay: time.Minute, TakeoverBound: 2*time.Hour + time.Minute}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("high %s = %+v, want %+v", c.name, c.got, c.want)
		}
	}
}

func TestParse_Tokens(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"secrets/pub.token": "pub-tok\n", "abs.token": "abs-tok"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := envMap(map[string]string{"DEDICATED_TOKEN": "ded-tok\n", "ADMIN_TOKEN": "adm-tok"})
	src := `public {
  address = "127.0.0.1:8500"
  token_file = "secrets/pub.token"
}
gateway "a" {
  source_datacenter = "dc1"
  dedicated {
    address = "127.0.0.1:9500"
    token_env = "DEDICATED_TOKEN"
  }
}
gateway "b" {
  source_datacenter = "dc1"
  dedicated {
    address = "127.0.0.1:9501"
    token_file = "` + filepath.Join(dir, "abs.token") + `"
  }
}
gateway "c" {
  source_datacenter = "dc1"
  dedicated {
    address = "127.0.0.1:9502"
    token = "inline"
  }
}
admin { token_env = "ADMIN_TOKEN" }
`
	// The config file lives in dir; the process's working directory is
	// elsewhere, so a relative token_file must resolve against dir.
	cfg, err := Parse([]byte(src), filepath.Join(dir, "gwsync.hcl"), env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got := []string{cfg.Public.Token, cfg.Gateways[0].Dedicated.Token, cfg.Gateways[1].Dedicated.Token, cfg.Gateways[2].Dedicated.Token, cfg.Admin.Token}
	want := []string{"pub-tok", "ded-tok", "abs-tok", "inline", "adm-tok"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tokens %q, want %q", got, want)
	}
}

// The env lookup is only consulted for token_env names: the loader reads no
// environment of its own.
func TestParse_EnvOnlyThroughLookup(t *testing.T) {
	var asked []string
	env := func(name string) (string, bool) {
		asked = append(asked, name)
		return "v", true
	}
	t.Setenv("CONSUL_HTTP_TOKEN", "from-process-env")
	src := pub + gw + "admin { token_env = \"ADMIN\" }\n"
	cfg, err := Parse([]byte(src), "x.hcl", env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !reflect.DeepEqual(asked, []string{"ADMIN"}) {
		t.Errorf("env lookups %q, want [ADMIN]", asked)
	}
	if cfg.Public.Token != "" || cfg.Gateways[0].Dedicated.Token != "" {
		t.Errorf("tokens taken from the process environment: %q %q", cfg.Public.Token, cfg.Gateways[0].Dedicated.Token)
	}
}

func TestParse_TLS(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"ca.pem", "client.pem", "client-key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("files resolved and https implied", func(t *testing.T) {
		src := `public {
  address = "127.0.0.1:8501"
  tls {
    ca_file = "ca.pem"
    cert_file = "client.pem"
    key_file = "` + filepath.Join(dir, "client-key.pem") + `"
    server_name = "server.dc1.consul"
    insecure_skip_verify = true
  }
}
` + gw
		cfg, err := Parse([]byte(src), filepath.Join(dir, "gwsync.hcl"), nil)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		want := TLS{Enabled: true, CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem"), ServerName: "server.dc1.consul", InsecureSkipVerify: true}
		if cfg.Public.TLS != want || cfg.Public.Scheme != "https" {
			t.Errorf("public scheme %q tls %+v, want https %+v", cfg.Public.Scheme, cfg.Public.TLS, want)
		}
		if d := cfg.Gateways[0].Dedicated; d.TLS.Enabled || d.Scheme != "http" {
			t.Errorf("dedicated inherited TLS from public: %+v", d)
		}
	})
	t.Run("every missing file reported", func(t *testing.T) {
		src, want := at(`public {
  address = "127.0.0.1:8501"
  tls {
    ca_file = «"no-ca.pem"
    cert_file = «"no-cert.pem"
    key_file = «"no-key.pem"
  }
}
` + gw)
		problems := problemsOf(t, dir, src, nil)
		var got []string
		for _, p := range problems {
			got = append(got, strings.SplitN(p.String(), ": ", 2)[0])
			if !strings.Contains(p.Msg, "no such file") {
				t.Errorf("message %q", p.Msg)
			}
		}
		for i := range want {
			want[i] = filepath.Join(dir, "gwsync.hcl") + ":" + want[i]
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("problems at %v, want %v", got, want)
		}
	})
}

// The worst-case HA takeover must end before resolvers distrust a mirror
// nobody refreshes meanwhile: the error is at the key that was written.
func TestParse_TakeoverLongerThanMarkerAge(t *testing.T) {
	base := "public {\n  address = \"127.0.0.1:8500\"\n}\ngateway \"g\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:9500\"\n  }\n}\n"
	tests := []struct {
		name, extra, at string
	}{
		{name: "session_ttl written", extra: "ha {\n  session_ttl = \"5m\"\n}\n", at: "t.hcl:11:17"},
		{name: "lock_delay written", extra: "ha {\n  lock_delay = \"60s\"\n}\nresolver {\n  max_marker_age = \"80s\"\n}\n", at: "t.hcl:11:16"},
		{name: "max_marker_age written", extra: "resolver {\n  max_marker_age = \"30s\"\n}\nmirror {\n  marker_interval = \"10s\"\n}\n", at: "t.hcl:11:20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tt.extra), "t.hcl", nil)
			if err == nil || !strings.Contains(err.Error(), tt.at+": ha: worst-case takeover") {
				t.Fatalf("error %v, want one at %s about the takeover", err, tt.at)
			}
		})
	}
}

func TestParse_AdminAllowedHosts(t *testing.T) {
	base := "public {\n  address = \"127.0.0.1:8500\"\n}\ngateway \"g\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:9500\"\n  }\n}\n"
	cfg, err := Parse([]byte(base+"admin {\n  allowed_hosts = [\"gwsync.internal\"]\n}\n"), "t.hcl", nil)
	if err != nil || !slices.Equal(cfg.Admin.AllowedHosts, []string{"gwsync.internal"}) {
		t.Fatalf("allowed_hosts = %v, %v", cfg, err)
	}
	_, err = Parse([]byte(base+"admin {\n  allowed_hosts = [\"gwsync.internal:9310\"]\n}\n"), "t.hcl", nil)
	if err == nil || !strings.Contains(err.Error(), "t.hcl:11:19: allowed_hosts") {
		t.Fatalf("error %v, want one at t.hcl:11:19", err)
	}
}
