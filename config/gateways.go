package config

import (
	"strconv"
)

// buildGateways builds every gateway block with its credentials, and checks
// that each has a dedicated cluster of its own that is not the public one.
func (l *loader) buildGateways(raws []rawGateway, cfg *Config) {
	if len(raws) == 0 {
		if !l.written("gateway") { // else hcl reported why none decoded
			l.at(l.attrRange(""), "at least one \"gateway\" block is required")
		}
		return
	}
	names := map[string]bool{}
	servers := map[string]string{} // sameServer key -> gateway name
	for i := range raws {
		r := &raws[i]
		step := gatewayStep(i)
		g := l.gatewayCore(r, cfg.Query.Prefix, step)
		if names[r.Name] {
			l.at(l.attrRange("", step), "gateway %q is defined more than once", r.Name)
		}
		names[r.Name] = true
		g.Schedule = deref(r.Schedule, DefaultSchedule)
		g.Spec, g.Period, g.MaxGap = l.schedule(g.Schedule, step)
		g.Services = cfg.Services
		if r.Services != nil {
			g.Services = l.services(r.Services, step, "services")
		}
		if d := r.Dedicated; d != nil {
			g.Dedicated.Token = l.secret("token", d.Token, d.TokenFile, d.TokenEnv, step, "dedicated")
			g.ReadToken = l.secret("read_token", d.ReadToken, d.ReadTokenFile, d.ReadTokenEnv, step, "dedicated")
			l.checkDedicated(g, cfg.Public.Cluster, servers, step)
		}
		cfg.Gateways = append(cfg.Gateways, g)
	}
}

// gatewayStep locates the i-th decoded gateway block (see loader.path).
func gatewayStep(i int) string { return "gateway#" + strconv.Itoa(i) }

// gatewayCore builds what both loaders need of a gateway block: its name,
// source DC, local query prefix and dedicated cluster without tokens.
func (l *loader) gatewayCore(r *rawGateway, queryPrefix, step string) Gateway {
	g := Gateway{Name: r.Name, SourceDatacenter: deref(r.SourceDatacenter, ""), QueryPrefix: deref(r.QueryPrefix, queryPrefix)}
	if !gatewayNameRe.MatchString(r.Name) {
		l.at(l.attrRange("", step), "gateway name %q: use 1-63 letters, digits, '-' or '_', starting with a letter or digit", r.Name)
	}
	switch {
	case r.SourceDatacenter == nil:
		if !l.has("source_datacenter", step) {
			l.at(l.attrRange("", step), "gateway %q: missing required attribute \"source_datacenter\"", r.Name)
		}
	case !dcNameRe.MatchString(g.SourceDatacenter):
		l.at(l.attrRange("source_datacenter", step), "source_datacenter %q: must match %s", g.SourceDatacenter, dcNameRe)
	}
	if r.QueryPrefix != nil && !prefixRe.MatchString(*r.QueryPrefix) {
		l.at(l.attrRange("query_prefix", step), "query_prefix %q: use only letters, digits, '-' and '_' (\"\" makes the local template Consul's catch-all)", *r.QueryPrefix)
	}
	if r.Dedicated == nil {
		if l.path(step, "dedicated") == nil { // else hcl reported why it did not decode
			l.at(l.attrRange("", step), "gateway %q: missing required block \"dedicated\"", r.Name)
		}
		return g
	}
	g.Dedicated = l.cluster(r.Dedicated, step, "dedicated")
	return g
}

// checkDedicated reports a dedicated cluster that is the public one or
// another gateway's (servers, keyed by sameServer), then records it.
func (l *loader) checkDedicated(g Gateway, public Cluster, servers map[string]string, step string) {
	if g.Dedicated.Address == "" {
		return
	}
	key := sameServer(g.Dedicated.Scheme, g.Dedicated.Address)
	if public.Address != "" && key == sameServer(public.Scheme, public.Address) {
		l.at(l.attrRange("address", step, "dedicated"), "dedicated address %q is the public cluster's address (%q): gwsync would mirror the public cluster into itself", g.Dedicated.Address, public.Address)
	}
	if servers == nil {
		return
	}
	if other, dup := servers[key]; dup {
		l.at(l.attrRange("address", step, "dedicated"), "dedicated address %q is already used by gateway %q: each gateway needs its own cluster", g.Dedicated.Address, other)
		return
	}
	servers[key] = g.Name
}
