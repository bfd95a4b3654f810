package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// errHidden: ACLs cut a read of what gwsync wrote
// (X-Consul-Results-Filtered-By-ACLs). A plan made from such a read would
// never update or delete the entries it cannot see, and a marker written
// after it would vouch for them: the Store refuses to load instead, and
// says which permission the token lacks.
var errHidden = errors.New("ACLs hide entries gwsync wrote")

// owned is the node meta of every node this gateway's controller wrote.
func (s *Store) owned() map[string]string {
	return map[string]string{mirror.MetaManaged: mirror.ManagedValue, mirror.MetaGateway: s.gateway()}
}

// hiddenEntries explains a filtered read of owned services: the nodes are
// hidden (no node write under the node prefix) or, if the owned nodes read
// in full, the services are.
func (s *Store) hiddenEntries(ctx context.Context) error {
	cctx, cancel := s.callCtx(ctx, false)
	defer cancel()
	q := s.qopts(cctx)
	q.NodeMeta = s.owned()
	_, meta, err := s.client.Catalog().Nodes(q)
	if err == nil && meta.ResultsFilteredByACLs {
		p := s.enc.NodePrefix
		return fmt.Errorf("%w: the token lacks node:write on nodes named %q (node_prefix %q { policy = \"write\" })", errHidden, p+"*", p)
	}
	return fmt.Errorf("%w: the token lacks service:write on the mirrored services (service_prefix \"\" { policy = \"write\" })", errHidden)
}

// hiddenKeys explains a filtered read of the gateway's records.
func (s *Store) hiddenKeys(prefix string) error {
	return fmt.Errorf("%w: the token lacks key:write on %s (key_prefix %q { policy = \"write\" })", errHidden, prefix, s.kvPrefix)
}

// isPermissionDenied reports a txn op Consul refused for the token's
// rights ("Permission denied: token with AccessorID ... lacks permission
// 'key:write' on ...").
func isPermissionDenied(what string) bool { return strings.HasPrefix(what, "Permission denied") }

// filtered reports whether Consul cut an answer for the token's rights.
func filtered(meta *api.QueryMeta) bool { return meta != nil && meta.ResultsFilteredByACLs }
