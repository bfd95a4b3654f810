package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// gateways renders one gateway block per schedule, each with its own
// dedicated cluster.
func gateways(schedules ...string) string {
	var b strings.Builder
	for i, s := range schedules {
		fmt.Fprintf(&b, "gateway \"g%d\" {\n  source_datacenter = \"dc1\"\n  schedule = %q\n  dedicated { address = \"127.0.0.1:%d\" }\n}\n", i, s, 9700+i)
	}
	return b.String()
}

func TestGateway_Periods(t *testing.T) {
	tests := []struct {
		spec            string
		period, longest time.Duration
	}{
		{spec: "@every 90s", period: 90 * time.Second, longest: 90 * time.Second},
		{spec: "@every 1h30m", period: 90 * time.Minute, longest: 90 * time.Minute},
		{spec: "*/1 * * * *", period: time.Minute, longest: time.Minute},
		{spec: "@hourly", period: time.Hour, longest: time.Hour},
		{spec: "TZ=UTC 30 * * * *", period: time.Hour, longest: time.Hour},
		{spec: "0,10 * * * *", period: 10 * time.Minute, longest: 50 * time.Minute},
		{spec: "0 9 * * *", period: 24 * time.Hour, longest: 24 * time.Hour},
		// Fridays 17:55 to Mondays 09:00: the sample must span a weekend.
		{spec: "*/5 9-17 * * 1-5", period: 5 * time.Minute, longest: 63*time.Hour + 5*time.Minute},
		{spec: "0 0 * * 0", period: 7 * 24 * time.Hour, longest: 7 * 24 * time.Hour},
		// Monthly: February 2025 has 28 days, March 31.
		{spec: "0 0 1 * *", period: 28 * 24 * time.Hour, longest: 31 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			src := pub + "mirror { max_sync_age = \"2000h\" }\n" + gateways(tt.spec)
			cfg, err := Parse([]byte(src), "p.hcl", nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			g := cfg.Gateways[0]
			if g.Period != tt.period || g.MaxGap != tt.longest {
				t.Errorf("Period, MaxGap = %s, %s; want %s, %s", g.Period, g.MaxGap, tt.period, tt.longest)
			}
			if g.Spec == nil || g.Schedule != tt.spec {
				t.Errorf("Spec %v, Schedule %q", g.Spec, g.Schedule)
			}
		})
	}
}

func TestQuery_ShareWindow(t *testing.T) {
	tests := []struct {
		name      string
		src       string // a mark where the warning is expected, if any
		effective time.Duration
	}{
		{name: "default kept under slow schedules", src: pub + gateways("@every 5m", "@every 1m"), effective: DefaultShareWindow},
		{name: "default lowered by a fast schedule", src: pub + gateways("@every 1m") + "gateway \"fast\" {\n  source_datacenter = \"dc1\"\n  schedule = «\"@every 3s\"\n  dedicated { address = \"127.0.0.1:9600\" }\n}\n", effective: 1500 * time.Millisecond},
		{name: "configured window lowered", src: pub + gateways("@every 4s", "@every 1m") + "query { share_window = «\"10s\" }\n", effective: 2 * time.Second},
		{name: "half a period is allowed", src: pub + gateways("@every 4s") + "query { share_window = \"2s\" }\n", effective: 2 * time.Second},
		{name: "zero stays zero", src: pub + gateways("@every 1s") + "query { share_window = \"0s\" }\n", effective: 0},
		{name: "cron period counts", src: pub + gateways("*/1 * * * *") + "query { share_window = «\"45s\" }\n", effective: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, want := at(tt.src)
			cfg, err := Parse([]byte(src), "s.hcl", nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cfg.Query.ShareWindow != tt.effective {
				t.Errorf("ShareWindow = %s, want %s (configured %s)", cfg.Query.ShareWindow, tt.effective, cfg.Query.ConfiguredShareWindow)
			}
			var got []string
			for _, w := range cfg.Warnings {
				if strings.Contains(w.Msg, "share_window lowered") {
					got = append(got, fmt.Sprintf("%d:%d", w.Line, w.Column))
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("share_window warnings at %v, want %v: %v", got, want, cfg.Warnings)
			}
			if lowered := cfg.Query.ShareWindow != cfg.Query.ConfiguredShareWindow; lowered != (len(want) > 0) {
				t.Errorf("lowered = %v, but %d warning marks", lowered, len(want))
			}
		})
	}
}

func TestParse_Warnings(t *testing.T) {
	tests := []struct {
		name string
		src  string // one mark per expected warning
		msg  string // fragment of every warning
	}{
		{
			name: "insecure_skip_verify in public and dedicated",
			src: `public {
  address = "127.0.0.1:8501"
  tls { insecure_skip_verify = «true }
}
gateway "edge" {
  source_datacenter = "dc1"
  dedicated {
    address = "127.0.0.1:9500"
    tls {
      server_name = "x"
      insecure_skip_verify = «true
    }
  }
}
`,
			msg: "insecure_skip_verify = true: the server's certificate is not verified",
		},
		{name: "insecure_skip_verify false is silent", src: "public {\n  address = \"127.0.0.1:8501\"\n  tls { insecure_skip_verify = false }\n}\n" + gw},
		{
			name: "events disabled with a default schedule",
			src:  pub + gateways("@every 15s") + gw + "events { enabled = «false }\n",
			msg:  "events are disabled, so changes reach a mirror only on its schedule, and gateways without one (edge) run the default \"@every 5m\": changes up to 5m late",
		},
		{name: "events disabled with explicit schedules is silent", src: pub + gateways("@every 15s") + "events { enabled = false }\n"},
		{name: "events enabled with the default schedule is silent", src: pub + gw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, want := at(tt.src)
			cfg, err := Parse([]byte(src), "w.hcl", nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []string
			for _, w := range cfg.Warnings {
				got = append(got, fmt.Sprintf("%d:%d", w.Line, w.Column))
				if !strings.Contains(w.Msg, tt.msg) || w.File != "w.hcl" {
					t.Errorf("warning %v does not contain %q", w, tt.msg)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("warnings at %v, want %v: %v", got, want, cfg.Warnings)
			}
		})
	}
}

func TestConfig_Hash(t *testing.T) {
	base := `public {
  address = "127.0.0.1:8500"
  token = "pub"
  read_token = "pub-read"
}
gateway "edge" {
  source_datacenter = "dc1"
  schedule = "@every 1m"
  dedicated {
    address = "127.0.0.1:9500"
    token = "ded"
  }
}
admin { token = "adm" }
ha { replica_id = "r1" }
`
	hash := func(t *testing.T, src, file string) string {
		t.Helper()
		cfg, err := Parse([]byte(src), file, envMap(map[string]string{"PUB": "from-env"}))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		h := cfg.Hash()
		if h2 := cfg.Hash(); h2 != h || len(h) != 32 {
			t.Fatalf("Hash() = %q then %q, want one stable 32-hex-digit value", h, h2)
		}
		return h
	}
	want := hash(t, base, "a.hcl")
	same := map[string]string{
		"other file name":  "b.hcl",
		"comments, layout": "# comment\n" + strings.ReplaceAll(base, "\n  ", "\n    "),
		"other tokens":     strings.NewReplacer(`"pub"`, `"x"`, `"ded"`, `"y"`, `"adm"`, `"z"`, `"pub-read"`, `"w"`).Replace(base),
		"token from env":   strings.Replace(base, `token = "pub"`, `token_env = "PUB"`, 1),
		"other replica_id": strings.Replace(base, `"r1"`, `"r2"`, 1),
		"other admin address": strings.Replace(base, `admin { token = "adm" }`, `admin {
  token = "adm"
  address = "10.0.0.7:9400"
}`, 1),
		"defaults written":  base + "events {\n  enabled = true\n  wait = \"5m\"\n}\nmirror { kv_prefix = \"gwsync/\" }\nquery { share_window = \"2s\" }\n",
		"equal durations":   strings.Replace(base, `"@every 1m"`, `"@every 60s"`, 1),
		"scheme written":    strings.Replace(base, `"127.0.0.1:9500"`, `"http://127.0.0.1:9500"`, 1),
		"replica_id absent": strings.Replace(base, `ha { replica_id = "r1" }`, "", 1),
		"token removed":     strings.Replace(base, `token = "ded"`, "", 1),
	}
	for name, src := range same {
		t.Run("same/"+name, func(t *testing.T) {
			file := "a.hcl"
			if name == "other file name" {
				file, src = src, base
			}
			if got := hash(t, src, file); got != want {
				t.Errorf("hash %s, want %s", got, want)
			}
		})
	}
	differ := map[string]string{
		"schedule":        strings.Replace(base, `"@every 1m"`, `"@every 2m"`, 1),
		"services":        base + "services { exclude = [] }\n",
		"gateway address": strings.Replace(base, `"127.0.0.1:9500"`, `"127.0.0.1:9501"`, 1),
		"events":          base + "events { rate = 6 }\n",
		"resolver":        base + "resolver { max_services = 9 }\n",
		"ha session_ttl":  base + "ha { session_ttl = \"20s\" }\n",
		"safety":          base + "safety { delete_guard_min = 6 }\n",
	}
	for name, src := range differ {
		t.Run("differs/"+name, func(t *testing.T) {
			if strings.Count(src, "ha {") > 1 {
				src = strings.Replace(src, `ha { replica_id = "r1" }`, "", 1)
			}
			if got := hash(t, src, "a.hcl"); got == want {
				t.Errorf("hash unchanged (%s)", got)
			}
		})
	}
}

func TestResolver_SnapshotFile(t *testing.T) {
	tests := []struct{ path, want string }{
		{path: "", want: ""},
		{path: "/var/lib/gwsync/snap.json", want: "/var/lib/gwsync/snap.json"},
		{path: "/var/lib/gwsync/%g.json", want: "/var/lib/gwsync/edge.json"},
		{path: "/var/lib/%g/%g-100%%.json", want: "/var/lib/edge/edge-100%.json"},
		{path: "/var/lib/%%g", want: "/var/lib/%g"},
	}
	for _, tt := range tests {
		if got := (Resolver{SnapshotPath: tt.path}).SnapshotFile("edge"); got != tt.want {
			t.Errorf("SnapshotFile(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	// A relative path is taken relative to the config file.
	cfg, err := Parse([]byte(pub+gw+"resolver { snapshot_path = \"snap/%g.json\" }\n"), filepath.Join("etc", "gwsync", "gwsync.hcl"), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := cfg.Resolver.SnapshotFile("edge"), filepath.Join("etc", "gwsync", "snap", "edge.json"); got != want {
		t.Errorf("relative snapshot_path gives %q, want %q", got, want)
	}
}

// A gateway's own services block replaces the global one entirely: keys it
// does not set take the defaults, not the global values.
func TestGateway_ServicesOverride(t *testing.T) {
	src := pub + `services {
  include = ["web-*"]
  exclude = ["web-internal"]
  tags = ["public"]
}
gateway "own" {
  source_datacenter = "dc1"
  services { include = ["team/*", "api"] }
  dedicated { address = "127.0.0.1:9500" }
}
gateway "global" {
  source_datacenter = "dc1"
  dedicated { address = "127.0.0.1:9501" }
}
`
	cfg, err := Parse([]byte(src), "o.hcl", nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	own, global := cfg.Gateways[0].Services, cfg.Gateways[1].Services
	if want := (Services{Include: []string{"team/*", "api"}, Exclude: []string{"consul"}}); !reflect.DeepEqual(own, want) {
		t.Errorf("own services %+v, want %+v", own, want)
	}
	if !reflect.DeepEqual(global, cfg.Services) {
		t.Errorf("global gateway services %+v, want the global block %+v", global, cfg.Services)
	}
	cases := []struct {
		sel  Services
		name string
		tags []string
		want bool
	}{
		{own, "team/payments", nil, true},
		{own, "api", nil, true},
		{own, "web-1", []string{"public"}, false},
		{global, "web-1", []string{"public"}, true},
		{global, "web-1", nil, false},
		{global, "web-internal", []string{"public"}, false},
	}
	for _, c := range cases {
		if got := c.sel.Selects(c.name, c.tags); got != c.want {
			t.Errorf("%+v.Selects(%q, %q) = %v, want %v", c.sel, c.name, c.tags, got, c.want)
		}
	}
}
