package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mark is where a test source expects a problem. at() strips every mark and
// returns the source with the line:col of each, so expected positions are
// written next to the offending token instead of counted by hand.
const mark = "«"

func at(src string) (clean string, positions []string) {
	var b strings.Builder
	for i, line := range strings.Split(src, "\n") {
		if i > 0 {
			b.WriteString("\n")
		}
		for {
			before, after, found := strings.Cut(line, mark)
			if !found {
				b.WriteString(line)
				break
			}
			positions = append(positions, fmt.Sprintf("%d:%d", i+1, len([]rune(before))+1))
			line = before + after
		}
	}
	return b.String(), positions
}

// Minimal valid pieces that the error cases are built from.
const (
	pub = "public { address = \"127.0.0.1:8500\" }\n"
	gw  = "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n"
	gw2 = "gateway \"edge2\" {\n  source_datacenter = \"dc2\"\n  dedicated { address = \"127.0.0.1:9501\" }\n}\n"
)

// problemsOf parses src as dir/gwsync.hcl and returns its problems, failing
// the test if the error is not an *Error.
func problemsOf(t *testing.T, dir, src string, env LookupEnv) []Problem {
	t.Helper()
	file := filepath.Join(dir, "gwsync.hcl")
	cfg, err := Parse([]byte(src), file, env)
	if err == nil {
		t.Fatalf("Parse succeeded (%+v), want an error", cfg)
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error %T %v, want *config.Error", err, err)
	}
	for _, p := range cerr.Problems {
		if p.File != file {
			t.Errorf("problem %v: file %q, want %q", p, p.File, file)
		}
	}
	return cerr.Problems
}

func TestParse_Errors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty.token"), []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(name string) (string, bool) {
		if name == "BLANK" {
			return "  ", true
		}
		return "", false
	}
	tests := []struct {
		name string
		src  string // one mark per expected problem
		msg  string // fragment of the (single) problem's message
		env  LookupEnv
	}{
		// Syntax and schema (hcl diagnostics).
		{name: "syntax error", src: pub + gw + "admin {\n  address = «\n}\n", msg: "Invalid expression"},
		{name: "unknown top-level attribute", src: pub + gw + "«verbose = true\n", msg: "Unsupported argument"},
		{name: "unknown top-level block", src: pub + gw + "«logging {}\n", msg: "Unsupported block type"},
		{name: "unknown attribute in public", src: "public {\n  address = \"127.0.0.1:8500\"\n  «tmeout = \"5s\"\n}\n" + gw, msg: "An argument named \"tmeout\" is not expected here"},
		{name: "unknown attribute in dedicated", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:9500\"\n    «scheme = \"https\"\n  }\n}\n", msg: "Unsupported argument"},
		{name: "unknown block in tls", src: "public {\n  address = \"127.0.0.1:8500\"\n  tls {\n    «verify {}\n  }\n}\n" + gw, msg: "Unsupported block type"},
		{name: "wrong type", src: "public {\n  address = \"127.0.0.1:8500\"\n  allow_stale = \"«maybe\"\n}\n" + gw, msg: "Unsuitable value type"},
		{name: "fractional int", src: "public {\n  address = \"127.0.0.1:8500\"\n  max_in_flight_per_dc = «1.5\n}\n" + gw, msg: "whole number"},
		{name: "duplicate public block", src: pub + "«public { address = \"127.0.0.1:8501\" }\n" + gw, msg: "Duplicate public block"},
		{name: "gateway without name", src: pub + "gateway «{\n  source_datacenter = \"dc1\"\n}\n", msg: "Missing name for gateway"},
		{name: "duplicate attribute", src: "public {\n  address = \"127.0.0.1:8500\"\n  «address = \"127.0.0.1:8501\"\n}\n" + gw, msg: "Attribute redefined"},

		// Required pieces.
		{name: "missing public", src: "«" + gw, msg: "missing required block \"public\""},
		{name: "missing gateway", src: "«" + pub, msg: "at least one \"gateway\" block is required"},
		{name: "missing public address", src: "«public { timeout = \"1s\" }\n" + gw, msg: "missing required attribute \"address\""},
		{name: "blank public address", src: "public { address = «\"  \" }\n" + gw, msg: "missing required attribute \"address\""},
		{name: "missing source_datacenter", src: pub + "«gateway \"edge\" {\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "missing required attribute \"source_datacenter\""},
		{name: "missing dedicated", src: pub + "«gateway \"edge\" { source_datacenter = \"dc1\" }\n", msg: "missing required block \"dedicated\""},
		{name: "missing dedicated address", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  «dedicated { timeout = \"1s\" }\n}\n", msg: "missing required attribute \"address\""},

		// Addresses.
		{name: "bad scheme", src: "public { address = «\"ftp://127.0.0.1:8500\" }\n" + gw, msg: "scheme must be http or https"},
		{name: "address without port", src: "public { address = «\"127.0.0.1\" }\n" + gw, msg: "missing port in address"},
		{name: "address without host", src: "public { address = «\":8500\" }\n" + gw, msg: "missing host"},
		{name: "address with bad port", src: "public { address = «\"127.0.0.1:http\" }\n" + gw, msg: "port must be a number"},
		{name: "address with port out of range", src: "public { address = «\"127.0.0.1:70000\" }\n" + gw, msg: "port must be a number from 0 to 65535"},
		{name: "dedicated address bad", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"nowhere\" }\n}\n", msg: "missing port in address"},
		{name: "dedicated is the public cluster", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"http://127.0.0.1:8500\" }\n}\n", msg: "is the public cluster's address"},
		{name: "dedicated shared by two gateways", src: pub + gw + "gateway \"edge2\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"127.0.0.1:9500\" }\n}\n", msg: "already used by gateway \"edge\""},
		{name: "address with a path", src: "public { address = «\"http://127.0.0.1:8500/v1\" }\n" + gw, msg: "without user, path or query"},
		{name: "address with brackets around a name", src: "public { address = «\"https://[consul]\" }\n" + gw, msg: "brackets must hold an IPv6 address"},
		{name: "http address with a tls block", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = «\"http://127.0.0.1:9500\"\n    tls {}\n  }\n}\n", msg: "says http:// but a tls block is set"},
		{name: "dedicated is the public cluster through localhost", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"LocalHost.:8500\" }\n}\n", msg: "is the public cluster's address (\"127.0.0.1:8500\")"},
		{name: "dedicated is the public cluster through ::1", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"https://[::1]:8500\" }\n}\n", msg: "is the public cluster's address"},
		{name: "dedicated is the public cluster through its default port", src: "public { address = \"https://Consul.Example\" }\ngateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"consul.example.:443\" }\n}\n", msg: "is the public cluster's address"},
		{name: "dedicated shared through an IPv4-mapped address", src: pub + gw + "gateway \"edge2\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"[::ffff:127.0.0.1]:9500\" }\n}\n", msg: "already used by gateway \"edge\""},
		{name: "dedicated shared through a zero-padded port", src: pub + gw + "gateway \"edge2\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"localhost:09500\" }\n}\n", msg: "already used by gateway \"edge\""},
		{name: "dedicated shared through default http port", src: pub + "gateway \"a\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = \"http://10.0.0.1\" }\n}\ngateway \"b\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"10.0.0.1:80\" }\n}\n", msg: "already used by gateway \"a\""},
		{name: "admin address bad", src: pub + gw + "admin { address = «\"9310\" }\n", msg: "admin address \"9310\""},

		// Durations and numbers.
		{name: "timeout not a duration", src: "public {\n  address = \"127.0.0.1:8500\"\n  timeout = «\"5\"\n}\n" + gw, msg: "timeout \"5\": must be a positive duration"},
		{name: "timeout zero", src: "public {\n  address = \"127.0.0.1:8500\"\n  timeout = «\"0s\"\n}\n" + gw, msg: "must be a positive duration"},
		{name: "timeout negative", src: "public {\n  address = \"127.0.0.1:8500\"\n  timeout = «\"-1s\"\n}\n" + gw, msg: "must be a positive duration"},
		{name: "dedicated timeout bad", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:9500\"\n    timeout = «\"soon\"\n  }\n}\n", msg: "timeout \"soon\""},
		{name: "share_window negative", src: pub + gw + "query { share_window = «\"-2s\" }\n", msg: "share_window \"-2s\""},
		{name: "marker_interval zero", src: pub + gw + "mirror { marker_interval = «\"0s\" }\n", msg: "marker_interval \"0s\""},
		{name: "max_in_flight_per_dc zero", src: "public {\n  address = \"127.0.0.1:8500\"\n  max_in_flight_per_dc = «0\n}\n" + gw, msg: "max_in_flight_per_dc 0: must be between 1 and 1000"},
		{name: "max_conns_per_host too high", src: "public {\n  address = \"127.0.0.1:8500\"\n  max_conns_per_host = «200\n}\n" + gw, msg: "max_conns_per_host 200: must be between 1 and 190"},
		{name: "nearest_n negative", src: pub + gw + "query {\n  failover { nearest_n = «-1 }\n}\n", msg: "nearest_n -1: must be between 0 and 100"},
		{name: "read_concurrency zero", src: pub + gw + "mirror { read_concurrency = «0 }\n", msg: "read_concurrency 0: must be between 1 and 256"},
		{name: "delete_guard_min negative", src: pub + gw + "safety { delete_guard_min = «-1 }\n", msg: "delete_guard_min -1"},
		{name: "max_delete_fraction zero", src: pub + gw + "safety { max_delete_fraction = «0 }\n", msg: "max_delete_fraction 0: must be greater than 0 and at most 1"},
		{name: "max_delete_fraction above one", src: pub + gw + "safety { max_delete_fraction = «1.5 }\n", msg: "max_delete_fraction 1.5"},

		// Names and patterns.
		{name: "query prefix empty", src: pub + gw + "query { prefix = «\"\" }\n", msg: "prefix \"\": must be non-empty"},
		{name: "query prefix bad characters", src: pub + gw + "query { prefix = «\"gw/sync\" }\n", msg: "prefix \"gw/sync\""},
		{name: "failover datacenter bad", src: pub + gw + "query {\n  failover { datacenters = «[\"dc2\", \"DC.3\"] }\n}\n", msg: "datacenter \"DC.3\""},
		{name: "include pattern bad", src: pub + gw + "services { include = «[\"web\", \"[\"] }\n", msg: "include pattern \"[\""},
		{name: "exclude pattern bad", src: pub + gw + "services { exclude = «[\"a[\"] }\n", msg: "exclude pattern \"a[\""},
		{name: "node_prefix bad", src: pub + gw + "mirror { node_prefix = «\"gw.\" }\n", msg: "node_prefix \"gw.\""},
		{name: "kv_prefix empty", src: pub + gw + "mirror { kv_prefix = «\"\" }\n", msg: "kv_prefix \"\": must be a relative key path ending in '/'"},
		{name: "kv_prefix absolute", src: pub + gw + "mirror { kv_prefix = «\"/gwsync/\" }\n", msg: "kv_prefix \"/gwsync/\""},
		{name: "kv_prefix without slash", src: pub + gw + "mirror { kv_prefix = «\"gwsync\" }\n", msg: "kv_prefix \"gwsync\""},
		{name: "kv_prefix bad characters", src: pub + gw + "mirror { kv_prefix = «\"gw sync/\" }\n", msg: "kv_prefix \"gw sync/\""},
		{name: "gateway name bad", src: pub + "«gateway \"-edge\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "gateway name \"-edge\""},
		{name: "gateway name too long", src: pub + "«gateway \"" + strings.Repeat("g", 64) + "\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "use 1-63 letters"},
		{name: "source_datacenter bad", src: pub + "gateway \"edge\" {\n  source_datacenter = «\"dc.1\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "source_datacenter \"dc.1\""},
		{name: "schedule bad", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"every 15s\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "schedule \"every 15s\""},
		{name: "schedule every below a second", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"@every 1x\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "schedule \"@every 1x\""},

		// Tokens.
		{name: "two token sources", src: "«public {\n  address = \"127.0.0.1:8500\"\n  token = \"a\"\n  token_env = \"B\"\n}\n" + gw, msg: "set at most one of token, token_file and token_env"},
		{name: "three token sources in dedicated", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  «dedicated {\n    address = \"127.0.0.1:9500\"\n    token = \"a\"\n    token_file = \"t\"\n    token_env = \"T\"\n  }\n}\n", msg: "set at most one of"},
		{name: "two token sources in admin", src: pub + gw + "«admin {\n  token = \"a\"\n  token_file = \"t\"\n}\n", msg: "set at most one of"},
		{name: "token_file missing", src: "public {\n  address = \"127.0.0.1:8500\"\n  token_file = «\"missing.token\"\n}\n" + gw, msg: "token_file: " + filepath.Join(dir, "missing.token") + ": no such file"},
		{name: "token_file empty", src: "public {\n  address = \"127.0.0.1:8500\"\n  token_file = «\"empty.token\"\n}\n" + gw, msg: "token_file \"empty.token\" is empty"},
		{name: "token_env without lookup", src: "public {\n  address = \"127.0.0.1:8500\"\n  token_env = «\"PUBLIC_TOKEN\"\n}\n" + gw, msg: "environment lookup is not available"},
		{name: "token_env unset", src: pub + gw + "admin { token_env = «\"ADMIN_TOKEN\" }\n", env: env, msg: "environment variable \"ADMIN_TOKEN\" is not set or empty"},
		{name: "token_env blank", src: pub + gw + "admin { token_env = «\"BLANK\" }\n", env: env, msg: "environment variable \"BLANK\" is not set or empty"},

		// New keys: schema.
		{name: "unknown attribute in events", src: pub + gw + "events { «rates = 5 }\n", msg: "Unsupported argument"},
		{name: "unknown attribute in gateway services", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  services { «tag = [\"a\"] }\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "Unsupported argument"},
		{name: "wrong type in resolver", src: pub + gw + "resolver { max_services = \"«many\" }\n", msg: "Unsuitable value type"},
		{name: "duplicate ha block", src: pub + gw + "ha {}\n«ha {}\n", msg: "Duplicate ha block"},

		// New keys: durations and numbers.
		{name: "max_staleness negative", src: "public {\n  address = \"127.0.0.1:8500\"\n  max_staleness = «\"-1s\"\n}\n" + gw, msg: "max_staleness \"-1s\": must be a duration of 0 or more"},
		{name: "max_sync_age zero", src: pub + gw + "mirror { max_sync_age = «\"0s\" }\n", msg: "max_sync_age \"0s\": must be a positive duration"},
		{name: "txn_concurrency zero", src: pub + gw + "mirror { txn_concurrency = «0 }\n", msg: "txn_concurrency 0: must be between 1 and 8"},
		{name: "txn_concurrency nine", src: pub + gw + "mirror { txn_concurrency = «9 }\n", msg: "txn_concurrency 9: must be between 1 and 8"},
		{name: "events wait too short", src: pub + gw + "events { wait = «\"500ms\" }\n", msg: "wait \"500ms\": must be a duration from 1s to 10m"},
		{name: "events wait too long", src: pub + gw + "events { wait = «\"11m\" }\n", msg: "wait \"11m\": must be a duration from 1s to 10m"},
		{name: "events rate zero", src: pub + gw + "events { rate = «0 }\n", msg: "rate 0: must be greater than 0 and at most 100"},
		{name: "events rate too high", src: pub + gw + "events { rate = «100.5 }\n", msg: "rate 100.5: must be greater than 0 and at most 100"},
		{name: "events burst zero", src: pub + gw + "events { burst = «0 }\n", msg: "burst 0: must be between 1 and 1000"},
		{name: "events burst too high", src: pub + gw + "events { burst = «1001 }\n", msg: "burst 1001: must be between 1 and 1000"},
		{name: "events enabled not a bool", src: pub + gw + "events { enabled = \"«perhaps\" }\n", msg: "Unsuitable value type"},
		{name: "retry min_backoff zero", src: pub + gw + "retry { min_backoff = «\"0s\" }\n", msg: "min_backoff \"0s\": must be a positive duration"},
		{name: "retry max below min", src: pub + gw + "retry {\n  min_backoff = \"10s\"\n  max_backoff = «\"5s\"\n}\n", msg: "max_backoff (5s) must be at least min_backoff (10s)"},
		{name: "retry min above default max", src: pub + gw + "retry { min_backoff = «\"5m\" }\n", msg: "max_backoff (2m) must be at least min_backoff (5m)"},
		{name: "resolver max_marker_age zero", src: pub + gw + "resolver { max_marker_age = «\"0s\" }\n", msg: "max_marker_age \"0s\": must be a positive duration"},
		{name: "resolver max_services zero", src: pub + gw + "resolver { max_services = «0 }\n", msg: "max_services 0: must be between 1 and 1000000"},
		{name: "resolver max_services too many", src: pub + gw + "resolver { max_services = «1000001 }\n", msg: "max_services 1000001"},
		{name: "resolver idle_timeout negative", src: pub + gw + "resolver { idle_timeout = «\"-1m\" }\n", msg: "idle_timeout \"-1m\""},
		{name: "resolver public_rate zero", src: pub + gw + "resolver { public_rate = «0 }\n", msg: "public_rate 0: must be greater than 0"},
		{name: "resolver public_rate negative", src: pub + gw + "resolver { public_rate = «-3 }\n", msg: "public_rate -3: must be greater than 0"},
		{name: "resolver snapshot_path unknown verb", src: pub + gw + "resolver { snapshot_path = «\"/var/lib/%x.json\" }\n", msg: "only %g (the gateway name) and %% (a percent sign)"},
		{name: "resolver snapshot_path trailing percent", src: pub + gw + "resolver { snapshot_path = «\"snap%\" }\n", msg: "snapshot_path \"snap%\""},
		{name: "ha session_ttl below Consul's minimum", src: pub + gw + "ha { session_ttl = «\"5s\" }\n", msg: "session_ttl \"5s\": must be a duration from 10s to 1h"},
		{name: "ha session_ttl too long", src: pub + gw + "ha { session_ttl = «\"2h\" }\n", msg: "session_ttl \"2h\": must be a duration from 10s to 1h"},
		{name: "ha lock_delay negative", src: pub + gw + "ha { lock_delay = «\"-1s\" }\n", msg: "lock_delay \"-1s\": must be a duration from 0s to 1m"},
		{name: "ha lock_delay above Consul's cap", src: pub + gw + "ha { lock_delay = «\"61s\" }\n", msg: "lock_delay \"61s\": must be a duration from 0s to 1m"},
		{name: "ha replica_id with a slash", src: pub + gw + "ha { replica_id = «\"a/b\" }\n", msg: "replica_id \"a/b\": use 1-128 letters"},
		{name: "ha replica_id dot-dot", src: pub + gw + "ha { replica_id = «\"..\" }\n", msg: "replica_id \"..\""},
		{name: "ha replica_id too long", src: pub + gw + "ha { replica_id = «\"" + strings.Repeat("r", 129) + "\" }\n", msg: "use 1-128 letters"},

		// New keys: names and patterns.
		{name: "gateway query_prefix bad", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  query_prefix = «\"q.\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "query_prefix \"q.\": use only letters"},
		{name: "gateway services pattern bad", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  services { exclude = «[\"[\"] }\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "exclude pattern \"[\""},
		{name: "kv_prefix with a dot-dot segment", src: pub + gw + "mirror { kv_prefix = «\"gwsync/../x/\" }\n", msg: "without empty, '.' or '..' segments"},
		{name: "kv_prefix with an empty segment", src: pub + gw + "mirror { kv_prefix = «\"gwsync//\" }\n", msg: "kv_prefix \"gwsync//\""},

		// Schedules.
		{name: "schedule every fraction of a second", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"@every 1500ms\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "this runs every 1s; write that"},
		{name: "schedule every zero", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"@every 0s\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "at least 1s apart"},
		{name: "schedule time zone alone", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"TZ=UTC\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "time zone \"UTC\" with no schedule after it"},
		{name: "schedule never runs", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"0 0 30 2 *\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "never runs"},

		// Rules across blocks.
		{name: "marker_interval too long for the default max_marker_age", src: pub + gw + "mirror { marker_interval = «\"3m\" }\n", msg: "marker_interval 3m: resolver.max_marker_age (5m) must be more than 2 x marker_interval, else resolvers would distrust a healthy mirror"},
		{name: "max_marker_age too short for the default marker_interval", src: pub + gw + "resolver { max_marker_age = «\"2m\" }\n", msg: "max_marker_age 2m: must be more than 2 x mirror.marker_interval (1m), else resolvers would distrust a healthy mirror"},
		{name: "max_marker_age and marker_interval both set", src: pub + gw + "mirror { marker_interval = \"30s\" }\nresolver { max_marker_age = «\"1m\" }\n", msg: "max_marker_age 1m: must be more than 2 x mirror.marker_interval (30s)"},
		{name: "max_sync_age below two default periods", src: pub + gw + "mirror { max_sync_age = «\"9m\" }\n", msg: "max_sync_age 9m: must be at least 2 x the longest gap between two full syncs (gateway \"edge\", schedule \"@every 5m\": 5m)"},
		{name: "schedule too slow for the default max_sync_age", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"@every 45m\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "schedule \"@every 45m\": runs up to 45m apart, more than half of mirror.max_sync_age (1h)"},
		{name: "daily cron schedule", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"0 9 * * *\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "runs up to 24h apart"},
		{name: "business-hours cron sees the weekend", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"*/5 9-17 * * 1-5\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: "runs up to 63h5m apart"},
		{name: "max_sync_age and schedule both set", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  schedule = \"@every 20m\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n" + gw2 + "mirror { max_sync_age = «\"30m\" }\n", msg: "gateway \"edge\", schedule \"@every 20m\": 20m"},

		// Read tokens.
		{name: "two read token sources", src: "«public {\n  address = \"127.0.0.1:8500\"\n  read_token = \"a\"\n  read_token_env = \"B\"\n}\n" + gw, msg: "set at most one of read_token, read_token_file and read_token_env"},
		{name: "read_token_file missing", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:9500\"\n    read_token_file = «\"read.token\"\n  }\n}\n", msg: "read_token_file: " + filepath.Join(dir, "read.token") + ": no such file"},
		{name: "read_token_file empty", src: "public {\n  address = \"127.0.0.1:8500\"\n  read_token_file = «\"empty.token\"\n}\n" + gw, msg: "read_token_file \"empty.token\" is empty"},
		{name: "read_token_env unset", src: "public {\n  address = \"127.0.0.1:8500\"\n  read_token_env = «\"READ\"\n}\n" + gw, env: env, msg: "read_token_env: environment variable \"READ\" is not set or empty"},

		// TLS.
		{name: "tls cert without key", src: "public {\n  address = \"127.0.0.1:8500\"\n  «tls {\n    cert_file = \"empty.token\"\n  }\n}\n" + gw, msg: "cert_file and key_file must be set together"},
		{name: "tls ca_file missing", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:9500\"\n    tls { ca_file = «\"ca.pem\" }\n  }\n}\n", msg: "tls ca_file: " + filepath.Join(dir, "ca.pem") + ": no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, want := at(tt.src)
			if len(want) != 1 {
				t.Fatalf("test case needs exactly one mark, has %d", len(want))
			}
			problems := problemsOf(t, dir, src, tt.env)
			if len(problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(problems), (&Error{Problems: problems}).Error())
			}
			p := problems[0]
			if got := fmt.Sprintf("%d:%d", p.Line, p.Column); got != want[0] {
				t.Errorf("position %s, want %s (%s)", got, want[0], p.Msg)
			}
			if !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", p.Msg, tt.msg)
			}
			if s := p.String(); !strings.HasPrefix(s, filepath.Join(dir, "gwsync.hcl")+":"+want[0]+": ") {
				t.Errorf("String() = %q, want file:line:col: prefix", s)
			}
		})
	}
}

func TestParse_AllProblemsAtOnce(t *testing.T) {
	tests := []struct {
		name string
		src  string // one mark per expected problem, in any order
	}{
		{
			name: "validation problems in every block",
			src: `«public {
  address = "127.0.0.1:8500"
  token = "a"
  token_file = "b"
  max_in_flight_per_dc = «0
}
query { prefix = «"a b" }
services { include = «["["] }
safety { max_delete_fraction = «2 }
mirror {
  kv_prefix = «"x"
  read_concurrency = «300
}
gateway "edge" {
  source_datacenter = «"DC1"
  schedule = «"never"
  dedicated { address = «"127.0.0.1" }
}
«gateway "edge2" { source_datacenter = "dc2" }
admin { address = «"localhost" }
`,
		},
		{
			name: "schema and rule problems together",
			src: `public {
  address = "127.0.0.1:8500"
  «tmeout = "5s"
  allow_stale = "«sometimes"
}
events { rate = «0 }
«cache {}
mirror { marker_interval = «"3m" }
gateway "edge" {
  source_datacenter = "dc1"
  schedule = «"@every 2h"
  dedicated {
    address = «"localhost:8500"
    «tokne = "t"
  }
}
ha { session_ttl = «"1s" }
`,
		},
		{
			name: "no spurious problems for blocks hcl could not decode",
			src: `public { address = "127.0.0.1:8500" }
«public { address = "127.0.0.1:8501" }
gateway «{
  source_datacenter = "dc1"
}
gateway "edge" {
  source_datacenter = "dc1"
  dedicated { address = "127.0.0.1:9500" }
  «dedicated { address = "127.0.0.1:9501" }
}
gateway "edge2" {
  source_datacenter = «"DC2"
  dedicated {
    address = «[1]
  }
}
`,
		},
		{
			name: "several unknown keys",
			src: `public {
  address = "127.0.0.1:8500"
  «adress = "x"
}
«serivces {}
gateway "edge" {
  source_datacenter = "dc1"
  «schedul = "@every 1m"
  dedicated {
    address = "127.0.0.1:9500"
    «tokne = "t"
  }
}
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, want := at(tt.src)
			problems := problemsOf(t, t.TempDir(), src, nil)
			var got []string
			for _, p := range problems {
				got = append(got, fmt.Sprintf("%d:%d", p.Line, p.Column))
			}
			// The marks are in source order, so this also checks sorting.
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("positions\n got %v\nwant %v\n%v", got, want, (&Error{Problems: problems}).Error())
			}
		})
	}
}

// A problem in the second of two same-named gateways is reported at the
// second block, not at the first.
func TestParse_DuplicateGatewayPosition(t *testing.T) {
	src, want := at(pub + gw + "«gateway \"edge\" {\n  source_datacenter = \"dc2\"\n  dedicated { address = \"127.0.0.1:9501\" }\n}\n")
	problems := problemsOf(t, t.TempDir(), src, nil)
	if len(problems) != 1 {
		t.Fatalf("got %d problems, want 1: %v", len(problems), problems)
	}
	p := problems[0]
	if !strings.Contains(p.Msg, "gateway \"edge\" is defined more than once") {
		t.Errorf("message %q", p.Msg)
	}
	if got := fmt.Sprintf("%d:%d", p.Line, p.Column); got != want[0] {
		t.Errorf("position %s, want %s (the duplicate, not the first definition)", got, want[0])
	}

	// Problems inside the duplicate are located in it too.
	src, want = at(pub + gw + "«gateway \"edge\" {\n  source_datacenter = \"dc2\"\n  schedule = «\"nope\"\n  dedicated { address = «\"127.0.0.1:9500\" }\n}\n")
	problems = problemsOf(t, t.TempDir(), src, nil)
	var got []string
	for _, p := range problems {
		got = append(got, fmt.Sprintf("%d:%d", p.Line, p.Column))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("positions %v, want %v\n%v", got, want, (&Error{Problems: problems}).Error())
	}
}
