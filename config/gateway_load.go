package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/gwsync/gwsync/mirror"
)

// GatewayConfig is what a gateway host needs to run a resolver for one
// gateway: both clusters with the read-only tokens, the names shared with
// the controller, and the resolver settings.
type GatewayConfig struct {
	// Name is the gateway; SourceDatacenter the public DC its queries run in.
	Name             string
	SourceDatacenter string
	// Public is the public cluster with public.read_token* as its token;
	// Dedicated is the gateway's own cluster with its dedicated
	// read_token*. Neither ever carries a controller's (write) token.
	Public    Cluster
	Dedicated Cluster
	// Public-side limits, as the controller uses them.
	AllowStale       bool
	MaxInFlightPerDC int
	MaxConnsPerHost  int
	// QueryPrefix is the public template's prefix (query.prefix);
	// LocalQueryPrefix the gateway's local template prefix.
	QueryPrefix      string
	LocalQueryPrefix string
	// NodePrefix, KVPrefix and MarkerInterval are the mirror block's.
	NodePrefix     string
	KVPrefix       string
	MarkerInterval time.Duration
	Resolver       Resolver
	// SnapshotFile is Resolver.SnapshotFile(Name): "" for no snapshot.
	SnapshotFile string
	Warnings     []Problem
}

// QueryName is the public prepared query to execute for service.
func (g *GatewayConfig) QueryName(service string) string { return g.QueryPrefix + service }

// LocalQueryName is the local prepared query that serves service from the
// mirror.
func (g *GatewayConfig) LocalQueryName(service string) string { return g.LocalQueryPrefix + service }

// LoadGateway reads the configuration file at path on a gateway host, for
// the gateway called name. It reports syntax and schema errors of the whole
// file, but resolves and validates only the public block (with its
// read_token*, never its token*), query.prefix, the mirror names and
// marker_interval, the resolver block and the named gateway's block (its
// dedicated cluster with its read_token*). It reads no other token file or
// variable and not the admin block: a gateway host holds no write or admin
// credential.
func LoadGateway(path, name string, env LookupEnv) (*GatewayConfig, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseGateway(src, path, name, env)
}

// ParseGateway is LoadGateway for HCL source; filename is used in positions
// and to resolve relative paths.
func ParseGateway(src []byte, filename, name string, env LookupEnv) (*GatewayConfig, error) {
	l, raw := decode(src, filename, env)
	if raw == nil {
		return nil, l.err()
	}
	out := l.buildGatewaySide(raw, name)
	if len(l.problems) > 0 {
		return nil, l.err()
	}
	out.Warnings = l.sorted(l.warnings)
	return out, nil
}

func (l *loader) buildGatewaySide(raw *rawFile, name string) *GatewayConfig {
	out := &GatewayConfig{Name: name}
	l.gatewayPublic(raw.Public, out)
	q := deref(raw.Query, rawQuery{})
	m := deref(raw.Mirror, rawMirror{})
	out.QueryPrefix = deref(q.Prefix, mirror.DefaultQueryPrefix)
	l.queryPrefix(q.Prefix, "query")
	names := l.mirrorNames(&m)
	out.NodePrefix, out.KVPrefix, out.MarkerInterval = names.NodePrefix, names.KVPrefix, names.MarkerInterval
	out.Resolver = l.resolver(raw.Resolver)
	l.checkMarkerAge(out.MarkerInterval, out.Resolver.MaxMarkerAge)
	out.SnapshotFile = out.Resolver.SnapshotFile(name)

	i, ok := l.findGateway(raw.Gateways, name)
	if !ok {
		return out
	}
	r := &raw.Gateways[i]
	step := gatewayStep(i)
	g := l.gatewayCore(r, out.QueryPrefix, step)
	out.SourceDatacenter, out.LocalQueryPrefix, out.Dedicated = g.SourceDatacenter, g.QueryPrefix, g.Dedicated
	if d := r.Dedicated; d != nil {
		out.Dedicated.Token = l.secret("read_token", d.ReadToken, d.ReadTokenFile, d.ReadTokenEnv, step, "dedicated")
		l.checkDedicated(g, out.Public, nil, step)
	}
	return out
}

// gatewayPublic builds the public cluster as a resolver reaches it.
func (l *loader) gatewayPublic(p *rawPublic, out *GatewayConfig) {
	if p == nil {
		if !l.written("public") {
			l.at(l.attrRange(""), "missing required block \"public\"")
		}
		return
	}
	var c rawCluster
	if p.Rest != nil {
		l.addDiags(gohcl.DecodeBody(p.Rest, nil, &c))
	}
	out.Public = l.cluster(&c, "public")
	out.Public.Token = l.secret("read_token", c.ReadToken, c.ReadTokenFile, c.ReadTokenEnv, "public")
	var lim Public
	l.publicLimits(p, &lim)
	out.AllowStale, out.MaxInFlightPerDC, out.MaxConnsPerHost = lim.AllowStale, lim.MaxInFlightPerDC, lim.MaxConnsPerHost
}

// findGateway returns the index of the one gateway block called name, or
// reports why there is none (or more than one).
func (l *loader) findGateway(raws []rawGateway, name string) (int, bool) {
	found := -1
	var names []string
	for i, r := range raws {
		names = append(names, fmt.Sprintf("%q", r.Name))
		if r.Name != name {
			continue
		}
		if found >= 0 {
			l.at(l.attrRange("", gatewayStep(i)), "gateway %q is defined more than once", name)
			continue
		}
		found = i
	}
	if found >= 0 {
		return found, true
	}
	known := "this file defines none"
	if len(names) > 0 {
		known = "this file defines " + strings.Join(names, ", ")
	}
	l.at(hcl.Range{Filename: l.filename, Start: hcl.InitialPos, End: hcl.InitialPos}, "gateway %q is not defined: %s", name, known)
	return 0, false
}
