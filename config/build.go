package config

import (
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/gwsync/gwsync/mirror"
)

var (
	// Consul's own rule for datacenter names.
	dcNameRe = regexp.MustCompile(`^[a-z0-9_-]+$`)
	// Gateway names end up in KV keys, node meta and metric labels.
	gatewayNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
	// Query names and node prefixes: conservative characters only.
	prefixRe = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)
	kvRe     = regexp.MustCompile(`^[A-Za-z0-9_./-]*$`)
)

func (l *loader) build(raw *rawFile) *Config {
	cfg := &Config{}
	l.buildPublic(raw.Public, cfg)
	l.buildQuery(raw.Query, cfg)
	cfg.Services = l.services(raw.Services, "services")
	l.buildSafety(raw.Safety, cfg)
	l.buildMirror(raw.Mirror, cfg)
	l.buildGateways(raw.Gateways, cfg)
	l.buildAdmin(raw.Admin, cfg)
	cfg.Events = l.events(raw.Events)
	cfg.Retry = l.retry(raw.Retry)
	cfg.Resolver = l.resolver(raw.Resolver)
	cfg.HA = l.ha(raw.HA)
	l.finalize(cfg)
	return cfg
}

func (l *loader) buildPublic(p *rawPublic, cfg *Config) {
	if p == nil {
		if !l.written("public") { // else hcl reported why it did not decode
			l.at(l.attrRange(""), "missing required block \"public\"")
		}
		return
	}
	var c rawCluster
	if p.Rest != nil {
		l.addDiags(gohcl.DecodeBody(p.Rest, nil, &c))
	}
	cfg.Public.Cluster = l.cluster(&c, "public")
	cfg.Public.Token = l.secret("token", c.Token, c.TokenFile, c.TokenEnv, "public")
	cfg.Public.ReadToken = l.secret("read_token", c.ReadToken, c.ReadTokenFile, c.ReadTokenEnv, "public")
	l.publicLimits(p, &cfg.Public)
}

// publicLimits sets the public-only attributes that carry no credential.
func (l *loader) publicLimits(p *rawPublic, out *Public) {
	out.AllowStale = deref(p.AllowStale, true)
	out.MaxInFlightPerDC = l.intIn(p.MaxInFlightPerDC, DefaultMaxInFlightPerDC, 1, 1000, "max_in_flight_per_dc", "public")
	out.MaxConnsPerHost = l.intIn(p.MaxConnsPerHost, DefaultMaxConnsPerHost, 1, 190, "max_conns_per_host", "public")
	out.MaxStaleness = l.duration(p.MaxStaleness, DefaultMaxStaleness, zeroOK, "max_staleness", "public")
}

// cluster builds a cluster's address, timeout and TLS; its tokens are
// resolved by the caller, which knows which of them its host may read.
func (l *loader) cluster(c *rawCluster, steps ...string) Cluster {
	out := Cluster{Scheme: "http"}
	switch {
	case c.Address == nil:
		if !l.has("address", steps...) { // else hcl reported its wrong type
			l.at(l.attrRange("address", steps...), "missing required attribute \"address\" (host:port)")
		}
	case strings.TrimSpace(*c.Address) == "":
		l.at(l.attrRange("address", steps...), "missing required attribute \"address\" (host:port)")
	default:
		scheme, hostport, err := parseAddress(*c.Address)
		if err != nil {
			l.at(l.attrRange("address", steps...), "address %q: %v", *c.Address, err)
		} else if scheme == "http" && c.TLS != nil && strings.Contains(*c.Address, "://") {
			l.at(l.attrRange("address", steps...), "address %q says http:// but a tls block is set: write https:// or no scheme", *c.Address)
		}
		out.Scheme, out.Address = scheme, hostport
	}
	out.Timeout = l.duration(c.Timeout, DefaultTimeout, positive, "timeout", steps...)
	if c.TLS != nil {
		out.Scheme = "https"
		out.TLS = l.tls(c.TLS, append(steps, "tls")...)
	}
	return out
}

func (l *loader) tls(t *rawTLS, steps ...string) TLS {
	out := TLS{
		Enabled:            true,
		CAFile:             l.resolve(deref(t.CAFile, "")),
		CertFile:           l.resolve(deref(t.CertFile, "")),
		KeyFile:            l.resolve(deref(t.KeyFile, "")),
		ServerName:         deref(t.ServerName, ""),
		InsecureSkipVerify: deref(t.InsecureSkipVerify, false),
	}
	if (out.CertFile == "") != (out.KeyFile == "") {
		l.at(l.attrRange("", steps...), "tls: cert_file and key_file must be set together")
	}
	for _, f := range []struct{ name, path string }{{"ca_file", out.CAFile}, {"cert_file", out.CertFile}, {"key_file", out.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			l.at(l.attrRange(f.name, steps...), "tls %s: %v", f.name, unwrapPathErr(err))
		}
	}
	if out.InsecureSkipVerify {
		l.warn(l.attrRange("insecure_skip_verify", steps...),
			"tls insecure_skip_verify = true: the server's certificate is not verified, so anyone on the path can read the ACL token and forge answers; use ca_file instead")
	}
	return out
}

func (l *loader) buildQuery(q *rawQuery, cfg *Config) {
	if q == nil {
		q = &rawQuery{}
	}
	cfg.Query = Query{
		Manage:                deref(q.Manage, true),
		Prefix:                deref(q.Prefix, mirror.DefaultQueryPrefix),
		OnlyPassing:           deref(q.OnlyPassing, true),
		NearestN:              DefaultNearestN,
		ConfiguredShareWindow: l.duration(q.ShareWindow, DefaultShareWindow, zeroOK, "share_window", "query"),
	}
	cfg.Query.ShareWindow = cfg.Query.ConfiguredShareWindow // lowered by finalize
	l.queryPrefix(q.Prefix, "query")
	if f := q.Failover; f != nil {
		cfg.Query.NearestN = l.intIn(f.NearestN, DefaultNearestN, 0, 100, "nearest_n", "query", "failover")
		cfg.Query.Datacenters = f.Datacenters
		for _, dc := range f.Datacenters {
			if !dcNameRe.MatchString(dc) {
				l.at(l.attrRange("datacenters", "query", "failover"), "datacenter %q: must match %s", dc, dcNameRe)
			}
		}
	}
}

// queryPrefix checks query.prefix: the public template's name, so it must
// not be empty (an empty template name is Consul's catch-all, which would
// answer every query name in the public cluster).
func (l *loader) queryPrefix(p *string, steps ...string) {
	if p == nil {
		return
	}
	if *p == "" || !prefixRe.MatchString(*p) {
		l.at(l.attrRange("prefix", steps...), "prefix %q: must be non-empty and use only letters, digits, '-' and '_'", *p)
	}
}

// services builds a services block (the global one, or a gateway's).
// Absent keys take the defaults, not the global block's values.
func (l *loader) services(s *rawServices, steps ...string) Services {
	if s == nil {
		s = &rawServices{}
	}
	out := Services{Include: s.Include, Exclude: s.Exclude, Tags: s.Tags}
	if s.Include == nil {
		out.Include = []string{"*"}
	}
	if s.Exclude == nil {
		out.Exclude = []string{"consul"}
	}
	for _, k := range []struct {
		key   string
		globs []string
	}{{"include", out.Include}, {"exclude", out.Exclude}} {
		for _, g := range k.globs {
			if err := checkGlob(g); err != nil {
				l.at(l.attrRange(k.key, steps...), "%s pattern %q: %v", k.key, g, err)
			}
		}
	}
	return out
}

func (l *loader) buildSafety(s *rawSafety, cfg *Config) {
	if s == nil {
		s = &rawSafety{}
	}
	cfg.Safety.MaxDeleteFraction = deref(s.MaxDeleteFraction, DefaultMaxDeleteFraction)
	if f := cfg.Safety.MaxDeleteFraction; !(f > 0 && f <= 1) {
		l.at(l.attrRange("max_delete_fraction", "safety"), "max_delete_fraction %v: must be greater than 0 and at most 1", f)
	}
	cfg.Safety.DeleteGuardMin = l.intIn(s.DeleteGuardMin, DefaultDeleteGuardMin, 0, 1<<30, "delete_guard_min", "safety")
}

func (l *loader) buildMirror(m *rawMirror, cfg *Config) {
	if m == nil {
		m = &rawMirror{}
	}
	cfg.Mirror = l.mirrorNames(m)
	cfg.Mirror.ReadConcurrency = l.intIn(m.ReadConcurrency, DefaultReadConcurrency, 1, 256, "read_concurrency", "mirror")
	cfg.Mirror.MaxSyncAge = l.duration(m.MaxSyncAge, mirror.DefaultMaxSyncAge, positive, "max_sync_age", "mirror")
	cfg.Mirror.TxnConcurrency = l.intIn(m.TxnConcurrency, DefaultTxnConcurrency, 1, 8, "txn_concurrency", "mirror")
}

// mirrorNames builds what readers of a dedicated cluster need of the
// mirror block: its prefixes and the marker interval.
func (l *loader) mirrorNames(m *rawMirror) Mirror {
	out := Mirror{
		NodePrefix:     deref(m.NodePrefix, mirror.DefaultNodePrefix),
		KVPrefix:       deref(m.KVPrefix, mirror.DefaultKVPrefix),
		MarkerInterval: l.duration(m.MarkerInterval, mirror.DefaultMarkerInterval, positive, "marker_interval", "mirror"),
	}
	if !prefixRe.MatchString(out.NodePrefix) {
		l.at(l.attrRange("node_prefix", "mirror"), "node_prefix %q: use only letters, digits, '-' and '_'", out.NodePrefix)
	}
	if kv := out.KVPrefix; !validKVPrefix(kv) {
		l.at(l.attrRange("kv_prefix", "mirror"), "kv_prefix %q: must be a relative key path ending in '/', of letters, digits, '-', '_' and '.', without empty, '.' or '..' segments", kv)
	}
	return out
}

// validKVPrefix: Consul's HTTP router cleans paths, so a key with an empty,
// "." or ".." segment cannot be read back by name.
func validKVPrefix(kv string) bool {
	if kv == "" || !kvRe.MatchString(kv) || strings.HasPrefix(kv, "/") || !strings.HasSuffix(kv, "/") {
		return false
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(kv, "/"), "/") {
		if seg == "" || !mirror.Addressable(seg) {
			return false
		}
	}
	return true
}

func (l *loader) buildAdmin(a *rawAdmin, cfg *Config) {
	if a == nil {
		a = &rawAdmin{}
	}
	cfg.Admin.Address = deref(a.Address, DefaultAdminAddress)
	if err := checkHostPort(cfg.Admin.Address); err != nil {
		l.at(l.attrRange("address", "admin"), "admin address %q: %v", cfg.Admin.Address, err)
	}
	cfg.Admin.Token = l.secret("token", a.Token, a.TokenFile, a.TokenEnv, "admin")
	for _, h := range a.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			l.at(l.attrRange("allowed_hosts", "admin"), "allowed_hosts %q: a host name without port, scheme or path", h)
		}
	}
	cfg.Admin.AllowedHosts = a.AllowedHosts
}

// Whether a duration key accepts zero.
const (
	positive = false
	zeroOK   = true
)

// duration parses a duration key: positive, or with zero, 0 or more.
func (l *loader) duration(v *string, def time.Duration, allowZero bool, name string, steps ...string) time.Duration {
	if v == nil {
		return def
	}
	d, err := time.ParseDuration(*v)
	switch {
	case allowZero && (err != nil || d < 0):
		l.at(l.attrRange(name, steps...), "%s %q: must be a duration of 0 or more, such as \"2s\"", name, *v)
		return def
	case !allowZero && (err != nil || d <= 0):
		l.at(l.attrRange(name, steps...), "%s %q: must be a positive duration such as \"5s\"", name, *v)
		return def
	}
	return d
}

// durationIn parses a duration key that must lie in [lo, hi].
func (l *loader) durationIn(v *string, def, lo, hi time.Duration, name string, steps ...string) time.Duration {
	if v == nil {
		return def
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d < lo || d > hi {
		l.at(l.attrRange(name, steps...), "%s %q: must be a duration from %s to %s", name, *v, fmtDur(lo), fmtDur(hi))
		return def
	}
	return d
}

func (l *loader) intIn(v *int, def, lo, hi int, name string, steps ...string) int {
	if v == nil {
		return def
	}
	if *v < lo || *v > hi {
		l.at(l.attrRange(name, steps...), "%s %d: must be between %d and %d", name, *v, lo, hi)
		return def
	}
	return *v
}

// rateIn checks a per-second rate: greater than 0, and at most hi unless
// hi is 0.
func (l *loader) rateIn(v *float64, def, hi float64, name string, steps ...string) float64 {
	if v == nil {
		return def
	}
	switch {
	case hi > 0 && !(*v > 0 && *v <= hi):
		l.at(l.attrRange(name, steps...), "%s %v: must be greater than 0 and at most %v", name, *v, hi)
	case !(*v > 0):
		l.at(l.attrRange(name, steps...), "%s %v: must be greater than 0", name, *v)
	default:
		return *v
	}
	return def
}

// fmtDur prints a duration without zero units: 5m, 1h, 1m30s, 500ms.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
