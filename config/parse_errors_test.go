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
