package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, a failure
// is always an *Error with at least one positioned problem, and a success
// is a usable configuration.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.hcl"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed configs in testdata: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(pub + gw))
	f.Add([]byte(pub + gw + "admin {\n  address = \n}\n"))
	f.Add([]byte("gateway {}\npublic { token = \"a\"\ntoken_env = \"X\" }\n"))
	f.Add([]byte("public { address = \"[::1]:8500\" tls { } }\n"))
	f.Add([]byte("query { failover { datacenters = [1, \"DC\"] } }\n"))
	f.Add([]byte("${a}\n"))
	f.Add([]byte{})
	// Every block added since the first seeds, alone and with its rules.
	f.Add([]byte(pub + gw + "events {\n  enabled = false\n  wait = \"10m\"\n  rate = 0.5\n  burst = 3\n}\n"))
	f.Add([]byte(pub + gw + "retry {\n  min_backoff = \"3m\"\n}\n"))
	f.Add([]byte(pub + gw + "resolver {\n  max_marker_age = \"90s\"\n  snapshot_path = \"%g/%%.json\"\n  max_services = 7\n  idle_timeout = \"1m\"\n  public_rate = 2\n}\n"))
	f.Add([]byte(pub + gw + "ha {\n  replica_id = \"r-1.a\"\n  session_ttl = \"10s\"\n  lock_delay = \"0s\"\n}\n"))
	f.Add([]byte(pub + gw + "mirror {\n  marker_interval = \"2m\"\n  max_sync_age = \"9m\"\n  txn_concurrency = 8\n}\n"))
	f.Add([]byte("public {\n  address = \"https://Consul\"\n  read_token_env = \"X\"\n  max_staleness = \"0s\"\n}\ngateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = \"*/5 9-17 * * 1-5\"\n  query_prefix = \"\"\n  services { include = [\"a/*\"] }\n  dedicated {\n    address = \"consul:443\"\n    read_token = \"r\"\n  }\n}\n"))
	f.Add([]byte(pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = \"TZ=UTC\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n"))

	// The seeds' relative token files resolve next to the fuzzed file, so
	// the full example reaches the success path too.
	dir := f.TempDir()
	tokens, _ := filepath.Glob(filepath.Join("testdata", "*.token"))
	for _, tok := range tokens {
		b, err := os.ReadFile(tok)
		if err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(tok)), b, 0o600); err != nil {
			f.Fatal(err)
		}
	}
	file := filepath.Join(dir, "fuzz.hcl")
	env := envMap(map[string]string{"EDGE_GZ_TOKEN": "t", "EDGE_GZ_READ_TOKEN": "r", "X": "x"})
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := Parse(src, file, env)
		if checkError(t, "Parse", cfg != nil, err) {
			checkConfig(t, cfg)
		}
		g, err := ParseGateway(src, file, "edge", env)
		if checkError(t, "ParseGateway", g != nil, err) && (g.Public.Address == "" || g.Dedicated.Address == "" || g.SourceDatacenter == "") {
			t.Errorf("ParseGateway accepted %+v", g)
		}
	})
}

// checkError checks a loader's result: an error is an *Error with sorted,
// positioned problems and comes without a value. It reports whether the
// load succeeded.
func checkError(t *testing.T, what string, got bool, err error) bool {
	t.Helper()
	if err == nil {
		if !got {
			t.Fatalf("%s returned neither a value nor an error", what)
		}
		return true
	}
	if got {
		t.Errorf("%s returned both a value and an error", what)
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("%s error %T %q is not a *config.Error", what, err, err)
	}
	if len(cerr.Problems) == 0 {
		t.Fatalf("%s: *Error without problems", what)
	}
	for i, p := range cerr.Problems {
		if p.Line < 1 || p.Column < 1 || p.Msg == "" {
			t.Errorf("%s: problem %d without a position or message: %+v", what, i, p)
		}
		if i > 0 {
			q := cerr.Problems[i-1]
			if p.Line < q.Line || (p.Line == q.Line && p.Column < q.Column) {
				t.Errorf("%s: problems not sorted by position: %v before %v", what, q, p)
			}
		}
	}
	return false
}

// checkConfig checks that an accepted configuration keeps every rule and
// that its effective values are derived as documented.
func checkConfig(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg.Public.Address == "" || len(cfg.Gateways) == 0 {
		t.Errorf("accepted a config without public address or gateways: %+v", cfg)
	}
	sw := cfg.Query.ShareWindow
	if sw > cfg.Query.ConfiguredShareWindow || sw < 0 {
		t.Errorf("share window %s, configured %s", sw, cfg.Query.ConfiguredShareWindow)
	}
	for _, g := range cfg.Gateways {
		if g.Dedicated.Address == "" || g.SourceDatacenter == "" || g.Spec == nil {
			t.Errorf("accepted gateway %+v", g)
		}
		if _, err := ParseSchedule(g.Schedule); err != nil {
			t.Errorf("accepted schedule %q that does not parse: %v", g.Schedule, err)
		}
		if g.Period <= 0 || g.Period > g.MaxGap || 2*sw > g.Period || cfg.Mirror.MaxSyncAge < 2*g.MaxGap {
			t.Errorf("gateway %s: period %s, longest gap %s, share window %s, max_sync_age %s", g.Name, g.Period, g.MaxGap, sw, cfg.Mirror.MaxSyncAge)
		}
	}
	if f := cfg.Safety.MaxDeleteFraction; !(f > 0 && f <= 1) {
		t.Errorf("accepted max_delete_fraction %v", f)
	}
	if cfg.Resolver.MaxMarkerAge <= 2*cfg.Mirror.MarkerInterval {
		t.Errorf("max_marker_age %s with marker_interval %s", cfg.Resolver.MaxMarkerAge, cfg.Mirror.MarkerInterval)
	}
	if cfg.HA.TakeoverBound != 2*cfg.HA.SessionTTL+cfg.HA.LockDelay || cfg.Retry.MaxBackoff < cfg.Retry.MinBackoff {
		t.Errorf("ha %+v, retry %+v", cfg.HA, cfg.Retry)
	}
	if h := cfg.Hash(); len(h) != 32 || h != cfg.Hash() {
		t.Errorf("Hash() = %q, not stable", h)
	}
}
