package ha

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/mirror"
)

func validOptions() Options {
	c, _ := api.NewClient(&api.Config{Address: "127.0.0.1:1"})
	return Options{
		Replica:   "gwsync-0",
		LockDelay: DefaultLockDelay,
		Gateways:  []Gateway{{Name: "edge-a", SourceDC: "dc1", Client: c}, {Name: "edge-b", SourceDC: "dc2", Client: c}},
	}
}

func TestOptions_Defaults(t *testing.T) {
	o, err := validOptions().withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.SessionTTL != DefaultSessionTTL || o.LockDelay != DefaultLockDelay || o.KVPrefix != mirror.DefaultKVPrefix ||
		o.HandoverSettle != DefaultSessionTTL || o.MaxTakeover != DefaultMaxTakeover || o.Logger == nil || o.Registerer == nil || o.Now == nil {
		t.Errorf("defaults not applied: %+v", o)
	}
	// The defaults keep the bound: worst-case takeover plus the
	// fallback margin within 30 s.
	if b := TakeoverBound(o.SessionTTL, o.LockDelay) + FallbackDelay(maxFallbackRank, 0); b > 30*time.Second {
		t.Errorf("default takeover bound %s exceeds 30s", b)
	}
}

func TestOptions_Validate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Options)
		want string // substring of the error; "" for valid
	}{
		{name: "valid", mod: func(*Options) {}},
		{name: "lock delay zero is valid", mod: func(o *Options) { o.LockDelay = 0 }},
		{name: "replica with dots and dashes", mod: func(o *Options) { o.Replica = "gwsync-7.pod_a" }},
		{name: "ttl at both limits", mod: func(o *Options) { o.SessionTTL, o.MaxTakeover = MaxSessionTTL, 3*time.Hour }},
		{name: "no replica", mod: func(o *Options) { o.Replica = "" }, want: `replica "": use 1-128`},
		{name: "replica with a slash", mod: func(o *Options) { o.Replica = "a/b" }, want: `replica "a/b"`},
		{name: "replica only dots", mod: func(o *Options) { o.Replica = ".." }, want: `replica ".."`},
		{name: "replica too long", mod: func(o *Options) { o.Replica = strings.Repeat("r", 129) }, want: "use 1-128"},
		{name: "ttl below Consul's minimum", mod: func(o *Options) { o.SessionTTL = 5 * time.Second }, want: "session TTL 5s: must be between 10s and 1h0m0s"},
		{name: "ttl above an hour", mod: func(o *Options) { o.SessionTTL, o.MaxTakeover = 2*time.Hour, 10*time.Hour }, want: "session TTL 2h0m0s"},
		{name: "negative lock delay", mod: func(o *Options) { o.LockDelay = -time.Second }, want: "lock delay -1s: must be between 0s and 1m0s"},
		{name: "lock delay above Consul's maximum", mod: func(o *Options) { o.LockDelay = 61 * time.Second }, want: "lock delay 1m1s"},
		{name: "takeover above the maximum", mod: func(o *Options) { o.SessionTTL = 2 * time.Minute },
			want: "worst-case takeover 2 x session TTL + lock delay = 4m5s exceeds the maximum 4m0s"},
		{name: "takeover within a raised maximum", mod: func(o *Options) { o.SessionTTL, o.MaxTakeover = 2*time.Minute, 5*time.Minute }},
		{name: "negative settle", mod: func(o *Options) { o.HandoverSettle = -1 }, want: "handover settle"},
		{name: "kv prefix without slash", mod: func(o *Options) { o.KVPrefix = "gwsync" }, want: `kv prefix "gwsync": must end in '/'`},
		{name: "no gateways", mod: func(o *Options) { o.Gateways = nil }, want: "no gateways"},
		{name: "gateway without name", mod: func(o *Options) { o.Gateways[1].Name = "" }, want: `gateways[1]: name ""`},
		{name: "duplicate gateway", mod: func(o *Options) { o.Gateways[1].Name = "edge-a" }, want: `gateways[1]: gateway "edge-a" is listed twice`},
		{name: "gateway without client", mod: func(o *Options) { o.Gateways[0].Client = nil }, want: `gateway "edge-a": no client`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			tt.mod(&o)
			_, err := New(o)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want one containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestOptions_EveryProblemAtOnce(t *testing.T) {
	o := validOptions()
	o.Replica, o.SessionTTL, o.LockDelay = "", time.Second, -1
	_, err := New(o)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"replica", "session TTL", "lock delay"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestNew_RegistersMetricsOnTheGivenRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := validOptions()
	o.Registerer = reg
	if _, err := New(o); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"gwsync_ha_owned", "gwsync_ha_lock_transitions_total", "gwsync_ha_members",
		"gwsync_ha_config_mismatch", "gwsync_ha_session_renew_failures_total", "gwsync_ha_session_up"} {
		if !names[want] {
			t.Errorf("metric %s not registered (have %v)", want, names)
		}
	}
	// A second coordinator on the same registry is a clear error, not a panic.
	if _, err := New(o); err == nil {
		t.Error("registering twice on one registry: no error")
	}
}
