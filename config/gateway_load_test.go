package config

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gwsync/gwsync/mirror"
)

func TestLoadGateway_Full(t *testing.T) {
	var asked []string
	env := func(name string) (string, bool) {
		asked = append(asked, name)
		return "from-env-" + name, true
	}
	tests := []struct {
		gateway string
		want    GatewayConfig
		asked   []string
	}{
		{
			gateway: "edge-bj",
			want: GatewayConfig{
				Name: "edge-bj", SourceDatacenter: "dc1",
				Public:     Cluster{Address: "127.0.0.1:8500", Scheme: "http", Token: "public-read-secret", Timeout: 5 * time.Second},
				Dedicated:  Cluster{Address: "127.0.0.1:9500", Scheme: "http", Token: "edge-bj-read-secret", Timeout: 2 * time.Second},
				AllowStale: true, MaxInFlightPerDC: 8, MaxConnsPerHost: 32,
				QueryPrefix: "gwsync-", LocalQueryPrefix: "local-",
				NodePrefix: "gws-", KVPrefix: "gwsync/", MarkerInterval: 30 * time.Second,
				Resolver:     Resolver{MaxMarkerAge: 3 * time.Minute, SnapshotPath: filepath.Join("testdata", "snapshots", "%g.json"), MaxServices: 5000, IdleTimeout: 15 * time.Minute, PublicRate: 10},
				SnapshotFile: filepath.Join("testdata", "snapshots", "edge-bj.json"),
			},
		},
		{
			gateway: "edge-gz",
			want: GatewayConfig{
				Name: "edge-gz", SourceDatacenter: "dc1",
				Public:     Cluster{Address: "127.0.0.1:8500", Scheme: "http", Token: "public-read-secret", Timeout: 5 * time.Second},
				Dedicated:  Cluster{Address: "127.0.0.1:9502", Scheme: "http", Token: "from-env-EDGE_GZ_READ_TOKEN", Timeout: DefaultTimeout},
				AllowStale: true, MaxInFlightPerDC: 8, MaxConnsPerHost: 32,
				QueryPrefix: "gwsync-", LocalQueryPrefix: "gwsync-",
				NodePrefix: "gws-", KVPrefix: "gwsync/", MarkerInterval: 30 * time.Second,
				Resolver:     Resolver{MaxMarkerAge: 3 * time.Minute, SnapshotPath: filepath.Join("testdata", "snapshots", "%g.json"), MaxServices: 5000, IdleTimeout: 15 * time.Minute, PublicRate: 10},
				SnapshotFile: filepath.Join("testdata", "snapshots", "edge-gz.json"),
			},
			// Only its own read token's variable: not EDGE_GZ_TOKEN.
			asked: []string{"EDGE_GZ_READ_TOKEN"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.gateway, func(t *testing.T) {
			asked = nil
			got, err := LoadGateway(filepath.Join("testdata", "full.hcl"), tt.gateway, env)
			if err != nil {
				t.Fatalf("LoadGateway: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("gateway config\n got %+v\nwant %+v", *got, tt.want)
			}
			if !slices.Equal(asked, tt.asked) {
				t.Errorf("environment lookups %q, want %q", asked, tt.asked)
			}
			if got.QueryName("web") != "gwsync-web" || got.LocalQueryName("web") != tt.want.LocalQueryPrefix+"web" {
				t.Errorf("QueryName %q, LocalQueryName %q", got.QueryName("web"), got.LocalQueryName("web"))
			}
		})
	}
}

// A gateway host holds only its own read tokens: the controller's token
// files, other gateways' files and the admin token are absent there. The
// gateway loader must not need them; the controller's loader must.
func TestLoadGateway_ReadsOnlyItsOwnCredentials(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"public-read.token": "pr", "edge-read.token": "er"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src, missing := at(`public {
  address = "127.0.0.1:8500"
  token_file = «"public.token"
  read_token_file = "public-read.token"
}
gateway "edge" {
  source_datacenter = "dc1"
  dedicated {
    address = "127.0.0.1:9500"
    token_file = «"edge.token"
    read_token_file = "edge-read.token"
  }
}
gateway "other" {
  source_datacenter = "dc2"
  dedicated {
    address = "127.0.0.1:9501"
    token_file = «"other.token"
    read_token_file = «"other-read.token"
  }
}
gateway "third" {
  source_datacenter = "dc2"
  dedicated {
    address = "127.0.0.1:9502"
    token_env = «"THIRD_TOKEN"
    read_token_env = «"THIRD_READ_TOKEN"
  }
}
admin { token_file = «"admin.token" }
`)
	file := filepath.Join(dir, "gwsync.hcl")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var asked []string
	env := func(name string) (string, bool) {
		asked = append(asked, name)
		return "", false
	}
	g, err := LoadGateway(file, "edge", env)
	if err != nil {
		t.Fatalf("LoadGateway: %v", err)
	}
	if g.Public.Token != "pr" || g.Dedicated.Token != "er" {
		t.Errorf("tokens: public %q dedicated %q, want the read tokens pr and er", g.Public.Token, g.Dedicated.Token)
	}
	if len(asked) != 0 {
		t.Errorf("the gateway loader looked up %q", asked)
	}

	_, err = Load(file, env)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Load: %v, want an *Error for the missing credentials", err)
	}
	var got []string
	for _, p := range cerr.Problems {
		got = append(got, fmt.Sprintf("%d:%d", p.Line, p.Column))
	}
	if !slices.Equal(got, missing) {
		t.Errorf("Load problems at %v, want %v:\n%v", got, missing, err)
	}
}

func TestLoadGateway_Errors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		gateway string
		src     string // one mark per expected problem
		msg     string // fragment of the first problem
	}{
		{name: "unknown gateway lists the known ones", gateway: "nope", src: "«" + pub + gw + gw2, msg: `gateway "nope" is not defined: this file defines "edge", "edge2"`},
		{name: "no gateway at all", gateway: "edge", src: "«" + pub, msg: `gateway "edge" is not defined: this file defines none`},
		{name: "gateway defined twice", gateway: "edge", src: pub + gw + "«gateway \"edge\" {\n  source_datacenter = \"dc2\"\n  dedicated { address = \"127.0.0.1:9501\" }\n}\n", msg: `gateway "edge" is defined more than once`},
		{name: "syntax error", gateway: "edge", src: pub + gw + "resolver {\n  max_services = «\n}\n", msg: "Invalid expression"},
		{name: "unknown key anywhere", gateway: "edge", src: pub + gw + "admin { «tokne = \"x\" }\n", msg: "Unsupported argument"},
		{name: "missing public", gateway: "edge", src: "«" + gw, msg: `missing required block "public"`},
		{name: "public read tokens twice", gateway: "edge", src: "«public {\n  address = \"127.0.0.1:8500\"\n  read_token = \"a\"\n  read_token_file = \"b\"\n}\n" + gw, msg: "set at most one of read_token"},
		{name: "own read token file missing", gateway: "edge", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:9500\"\n    read_token_file = «\"nope.token\"\n  }\n}\n", msg: "read_token_file: " + filepath.Join(dir, "nope.token")},
		{name: "own read token variable unset", gateway: "edge", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:9500\"\n    read_token_env = «\"NOPE\"\n  }\n}\n", msg: `read_token_env: environment variable "NOPE" is not set`},
		{name: "dedicated is the public cluster", gateway: "edge", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated { address = «\"localhost:8500\" }\n}\n", msg: "is the public cluster's address"},
		{name: "missing source_datacenter", gateway: "edge", src: pub + "«gateway \"edge\" {\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: `missing required attribute "source_datacenter"`},
		{name: "missing dedicated", gateway: "edge", src: pub + "«gateway \"edge\" { source_datacenter = \"dc1\" }\n", msg: `missing required block "dedicated"`},
		{name: "bad query prefix", gateway: "edge", src: pub + gw + "query { prefix = «\"a.b\" }\n", msg: `prefix "a.b"`},
		{name: "bad local query prefix", gateway: "edge", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  query_prefix = «\"a b\"\n  dedicated { address = \"127.0.0.1:9500\" }\n}\n", msg: `query_prefix "a b"`},
		{name: "marker age rule", gateway: "edge", src: pub + gw + "mirror { marker_interval = «\"150s\" }\n", msg: "resolvers would distrust a healthy mirror"},
		{name: "bad snapshot path", gateway: "edge", src: pub + gw + "resolver { snapshot_path = «\"%s.json\" }\n", msg: "snapshot_path"},
		{name: "dedicated tls file missing", gateway: "edge", src: pub + "gateway \"edge\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:9500\"\n    tls { ca_file = «\"ca.pem\" }\n  }\n}\n", msg: "tls ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, want := at(tt.src)
			file := filepath.Join(dir, "gwsync.hcl")
			g, err := ParseGateway([]byte(src), file, tt.gateway, envMap(nil))
			var cerr *Error
			if !errors.As(err, &cerr) || g != nil {
				t.Fatalf("ParseGateway = %+v, %v; want an *Error", g, err)
			}
			var got []string
			for _, p := range cerr.Problems {
				got = append(got, fmt.Sprintf("%d:%d", p.Line, p.Column))
			}
			if !slices.Equal(got, want) {
				t.Errorf("problems at %v, want %v:\n%v", got, want, err)
			}
			if !strings.Contains(cerr.Problems[0].Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", cerr.Problems[0].Msg, tt.msg)
			}
		})
	}
}

// What the gateway loader does not own is not its business: rules of
// blocks a resolver does not read do not stop a gateway host.
func TestLoadGateway_IgnoresControllerOnlyRules(t *testing.T) {
	src := pub + gw + `gateway "slow" {
  source_datacenter = "dc1"
  schedule = "@every 3h"
  dedicated { address = "127.0.0.1:9500" }
}
safety { max_delete_fraction = 3 }
services { include = ["["] }
events { rate = 0 }
admin { token_env = "ADMIN" }
`
	if _, err := Parse([]byte(src), "c.hcl", nil); err == nil {
		t.Fatal("Parse accepted the controller-only problems")
	}
	g, err := ParseGateway([]byte(src), "c.hcl", "edge", nil)
	if err != nil {
		t.Fatalf("ParseGateway: %v", err)
	}
	if g.Name != "edge" || g.SourceDatacenter != "dc1" || g.KVPrefix != mirror.DefaultKVPrefix || g.Resolver.MaxMarkerAge != mirror.DefaultMaxMarkerAge {
		t.Errorf("gateway config %+v", g)
	}
}

// The clusters LoadGateway returns are ready to use: a client built from
// them sends the read token and nothing else.
func TestLoadGateway_ClientsUseReadTokens(t *testing.T) {
	setConsulEnv(t)
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	src := fmt.Sprintf(`public {
  address = %q
  token = "public-write"
  read_token = "public-read"
}
gateway "edge" {
  source_datacenter = "dc1"
  dedicated {
    address = "http://localhost:1"
    token = "dedicated-write"
    read_token = "dedicated-read"
  }
}
`, u.Host)
	g, err := ParseGateway([]byte(src), "r.hcl", "edge", nil)
	if err != nil {
		t.Fatalf("ParseGateway: %v", err)
	}
	client, err := g.Public.NewClient(ClientOptions{MaxConnsPerHost: g.MaxConnsPerHost})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	if _, _, err := client.Catalog().Services(nil); err != nil {
		t.Fatalf("request: %v", err)
	}
	if got := rec.last(t).Header.Get("X-Consul-Token"); got != "public-read" {
		t.Errorf("public X-Consul-Token = %q, want the read token", got)
	}
	if g.Dedicated.Token != "dedicated-read" {
		t.Errorf("dedicated token %q, want the read token", g.Dedicated.Token)
	}
}
