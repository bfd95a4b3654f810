package mirror

import (
	"maps"
	"slices"

	"github.com/hashicorp/consul/api"
)

// LocalTemplate is the prepared-query template gwsync keeps in a gateway's
// dedicated cluster, so a gateway that executes "<name><service>" over HTTP
// or resolves "<name><service>.query.consul" over DNS is answered from the
// mirror by changing only the Consul address it talks to.
//
// It has no failover: the mirror already holds the public query's answer,
// failover included. It selects only this gateway's mirrored nodes. It is
// created only after a complete sync (right after the txn that writes the
// marker), so a dedicated cluster that restarted empty answers "query not
// found" (a miss a gateway falls back on) until it is refilled, never an
// empty answer from an unsynced cluster. It does not read the marker: once
// created it answers from the mirror even when no controller vouches for
// it any more (a gateway that cares checks the marker's checked_at).
// An empty answer from it means the service has no passing instance in the
// public query's answer, or that gwsync does not mirror the service
// (outside the coverage): a gateway without the resolver library treats an
// empty answer as a miss and asks the public cluster.
func LocalTemplate(name, gateway string) *api.PreparedQueryDefinition {
	return &api.PreparedQueryDefinition{
		Name:     name,
		Template: api.QueryTemplate{Type: "name_prefix_match"},
		Service: api.ServiceQuery{
			Service:  "${name.suffix}",
			NodeMeta: map[string]string{MetaManaged: ManagedValue, MetaGateway: gateway},
		},
	}
}

// PublicTemplate is the template gwsync keeps in every public source DC:
// executing "<prefix><service>" runs the query for that service with the
// configured failover.
func PublicTemplate(prefix string, onlyPassing bool, nearestN int, datacenters []string) *api.PreparedQueryDefinition {
	return &api.PreparedQueryDefinition{
		Name:     prefix,
		Template: api.QueryTemplate{Type: "name_prefix_match"},
		Service: api.ServiceQuery{
			Service:     "${name.suffix}",
			OnlyPassing: onlyPassing,
			Failover:    api.QueryFailoverOptions{NearestN: nearestN, Datacenters: slices.Clone(datacenters)},
		},
	}
}

// TemplateEqual reports whether a stored query definition does what want
// asks: the template and every field of the service query that filters or
// orders results (tags, node and service meta, near, ignored checks,
// failover), with nil and empty the same. An edit made out of band to any
// of them is reverted.
func TemplateEqual(have, want *api.PreparedQueryDefinition) bool {
	if have == nil || want == nil {
		return have == want
	}
	h, w := have.Service, want.Service
	return have.Name == want.Name &&
		have.Token == want.Token && // a token set out of band filters answers (it reads back redacted)
		have.Template.Type == want.Template.Type &&
		have.Template.Regexp == want.Template.Regexp &&
		have.Template.RemoveEmptyTags == want.Template.RemoveEmptyTags &&
		h.Service == w.Service &&
		h.OnlyPassing == w.OnlyPassing &&
		h.Near == w.Near &&
		h.Connect == w.Connect &&
		h.SamenessGroup == w.SamenessGroup &&
		h.Failover.NearestN == w.Failover.NearestN &&
		len(h.Failover.Targets) == 0 && len(w.Failover.Targets) == 0 &&
		equalStrings(h.Failover.Datacenters, w.Failover.Datacenters) &&
		equalStrings(h.Tags, w.Tags) &&
		equalStrings(h.IgnoreCheckIDs, w.IgnoreCheckIDs) &&
		equalMaps(h.NodeMeta, w.NodeMeta) &&
		equalMaps(h.ServiceMeta, w.ServiceMeta)
}

func equalStrings(a, b []string) bool { return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b)) }

func equalMaps(a, b map[string]string) bool {
	return len(a) == len(b) && (len(a) == 0 || maps.Equal(a, b))
}
