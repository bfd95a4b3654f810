package config

import (
	"net"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/robfig/cron/v3"
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

// cronParser accepts the standard 5-field spec and descriptors (@every …).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a gateway schedule the way the controller runs it.
func ParseSchedule(spec string) (cron.Schedule, error) { return cronParser.Parse(spec) }

func (l *loader) build(raw *rawFile) *Config {
	cfg := &Config{}
	l.buildPublic(raw.Public, cfg)
	l.buildQuery(raw.Query, cfg)
	l.buildServices(raw.Services, cfg)
	l.buildSafety(raw.Safety, cfg)
	l.buildMirror(raw.Mirror, cfg)
	l.buildGateways(raw.Gateways, cfg)
	l.buildAdmin(raw.Admin, cfg)
	return cfg
}

func (l *loader) buildPublic(p *rawPublic, cfg *Config) {
	if p == nil {
		l.at(l.attrRange(""), "missing required block \"public\"")
		return
	}
	var c rawCluster
	if diags := gohcl.DecodeBody(p.Rest, nil, &c); diags.HasErrors() {
		l.addDiags(diags)
		return
	}
	cfg.Public.Cluster = l.cluster(&c, "public")
	cfg.Public.AllowStale = deref(p.AllowStale, true)
	cfg.Public.MaxInFlightPerDC = l.intIn(p.MaxInFlightPerDC, DefaultMaxInFlightPerDC, 1, 1000, "max_in_flight_per_dc", "public")
	cfg.Public.MaxConnsPerHost = l.intIn(p.MaxConnsPerHost, DefaultMaxConnsPerHost, 1, 190, "max_conns_per_host", "public")
}

func (l *loader) cluster(c *rawCluster, steps ...string) Cluster {
	out := Cluster{Scheme: "http"}
	if c.Address == nil || strings.TrimSpace(*c.Address) == "" {
		l.at(l.attrRange("address", steps...), "missing required attribute \"address\" (host:port)")
	} else {
		addr := *c.Address
		if scheme, rest, ok := strings.Cut(addr, "://"); ok {
			if scheme != "http" && scheme != "https" {
				l.at(l.attrRange("address", steps...), "address %q: scheme must be http or https", addr)
			}
			out.Scheme, addr = scheme, rest
		}
		if err := checkHostPort(addr); err != nil {
			l.at(l.attrRange("address", steps...), "address %q: %v", *c.Address, err)
		}
		out.Address = addr
	}
	out.Token = l.token(c.Token, c.TokenFile, c.TokenEnv, steps...)
	out.Timeout = l.duration(c.Timeout, DefaultTimeout, "timeout", steps...)
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
	for name, p := range map[string]string{"ca_file": out.CAFile, "cert_file": out.CertFile, "key_file": out.KeyFile} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			l.at(l.attrRange(name, steps...), "tls %s: %v", name, unwrapPathErr(err))
		}
	}
	return out
}

func (l *loader) buildQuery(q *rawQuery, cfg *Config) {
	if q == nil {
		q = &rawQuery{}
	}
	cfg.Query = Query{
		Manage:      deref(q.Manage, true),
		Prefix:      deref(q.Prefix, DefaultQueryPrefix),
		OnlyPassing: deref(q.OnlyPassing, true),
		NearestN:    DefaultNearestN,
		ShareWindow: l.duration(q.ShareWindow, DefaultShareWindow, "share_window", "query"),
	}
	if cfg.Query.Prefix == "" || !prefixRe.MatchString(cfg.Query.Prefix) {
		l.at(l.attrRange("prefix", "query"), "prefix %q: must be non-empty and use only letters, digits, '-' and '_'", cfg.Query.Prefix)
	}
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

func (l *loader) buildServices(s *rawServices, cfg *Config) {
	if s == nil {
		s = &rawServices{}
	}
	cfg.Services = Services{Include: s.Include, Exclude: s.Exclude, Tags: s.Tags}
	if s.Include == nil {
		cfg.Services.Include = []string{"*"}
	}
	if s.Exclude == nil {
		cfg.Services.Exclude = []string{"consul"}
	}
	for key, globs := range map[string][]string{"include": cfg.Services.Include, "exclude": cfg.Services.Exclude} {
		for _, g := range globs {
			if _, err := path.Match(g, ""); err != nil {
				l.at(l.attrRange(key, "services"), "%s pattern %q: %v", key, g, err)
			}
		}
	}
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
	cfg.Mirror = Mirror{
		NodePrefix:      deref(m.NodePrefix, DefaultNodePrefix),
		KVPrefix:        deref(m.KVPrefix, DefaultKVPrefix),
		MarkerInterval:  l.duration(m.MarkerInterval, DefaultMarkerInterval, "marker_interval", "mirror"),
		ReadConcurrency: l.intIn(m.ReadConcurrency, DefaultReadConcurrency, 1, 256, "read_concurrency", "mirror"),
	}
	if !prefixRe.MatchString(cfg.Mirror.NodePrefix) {
		l.at(l.attrRange("node_prefix", "mirror"), "node_prefix %q: use only letters, digits, '-' and '_'", cfg.Mirror.NodePrefix)
	}
	if kv := cfg.Mirror.KVPrefix; kv == "" || !kvRe.MatchString(kv) || strings.HasPrefix(kv, "/") || !strings.HasSuffix(kv, "/") {
		l.at(l.attrRange("kv_prefix", "mirror"), "kv_prefix %q: must be a relative key path ending in '/'", kv)
	}
}

func (l *loader) buildGateways(raws []rawGateway, cfg *Config) {
	if len(raws) == 0 {
		l.at(l.attrRange(""), "at least one \"gateway\" block is required")
		return
	}
	names := map[string]bool{}
	dedicated := map[string]string{}
	for i, r := range raws {
		step := "gateway#" + strconv.Itoa(i) // gohcl keeps the blocks' order
		g := Gateway{Name: r.Name, SourceDatacenter: deref(r.SourceDatacenter, ""), Schedule: deref(r.Schedule, DefaultSchedule)}
		if !gatewayNameRe.MatchString(r.Name) {
			l.at(l.attrRange("", step), "gateway name %q: use 1-63 letters, digits, '-' or '_', starting with a letter or digit", r.Name)
		}
		if names[r.Name] {
			l.at(l.attrRange("", step), "gateway %q is defined more than once", r.Name)
		}
		names[r.Name] = true
		if r.SourceDatacenter == nil {
			l.at(l.attrRange("", step), "gateway %q: missing required attribute \"source_datacenter\"", r.Name)
		} else if !dcNameRe.MatchString(g.SourceDatacenter) {
			l.at(l.attrRange("source_datacenter", step), "source_datacenter %q: must match %s", g.SourceDatacenter, dcNameRe)
		}
		if _, err := ParseSchedule(g.Schedule); err != nil {
			l.at(l.attrRange("schedule", step), "schedule %q: %v", g.Schedule, err)
		}
		if r.Dedicated == nil {
			l.at(l.attrRange("", step), "gateway %q: missing required block \"dedicated\"", r.Name)
		} else {
			g.Dedicated = l.cluster(r.Dedicated, step, "dedicated")
			if other, dup := dedicated[g.Dedicated.Address]; dup && g.Dedicated.Address != "" {
				l.at(l.attrRange("address", step, "dedicated"), "dedicated address %q is already used by gateway %q: each gateway needs its own cluster", g.Dedicated.Address, other)
			}
			if g.Dedicated.Address != "" && g.Dedicated.Address == cfg.Public.Address {
				l.at(l.attrRange("address", step, "dedicated"), "dedicated address %q is the public cluster's address", g.Dedicated.Address)
			}
			dedicated[g.Dedicated.Address] = r.Name
		}
		cfg.Gateways = append(cfg.Gateways, g)
	}
}

func (l *loader) buildAdmin(a *rawAdmin, cfg *Config) {
	if a == nil {
		a = &rawAdmin{}
	}
	cfg.Admin.Address = deref(a.Address, DefaultAdminAddress)
	if err := checkHostPort(cfg.Admin.Address); err != nil {
		l.at(l.attrRange("address", "admin"), "admin address %q: %v", cfg.Admin.Address, err)
	}
	cfg.Admin.Token = l.token(a.Token, a.TokenFile, a.TokenEnv, "admin")
}

func (l *loader) duration(v *string, def time.Duration, name string, steps ...string) time.Duration {
	if v == nil {
		return def
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d < 0 || (d == 0 && name != "share_window") {
		l.at(l.attrRange(name, steps...), "%s %q: must be a positive duration such as \"5s\"", name, *v)
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

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return errorString("missing host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return errorString("port must be a number from 0 to 65535")
	}
	return nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
