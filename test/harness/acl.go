package harness

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-uuid"
)

// aclSettings are a server's ACL settings (see WithACL).
type aclSettings struct {
	token string
	// recovery is the agent recovery token: the agent resolves it itself,
	// so /v1/agent calls (a WAN join) work before a secondary DC can
	// resolve tokens. It must differ from token: the agent checks it
	// first and grants it only agent and node read rights.
	recovery string
	// primary is the ACL primary datacenter: the server's own DC unless a
	// federation says otherwise.
	primary string
}

// WithACL turns ACLs on with a default-deny policy and token as the
// management token: the initial management token of the primary DC, the
// agent's own token and, in a secondary DC, the replication token. The
// harness's helpers and Client use it; a request without a token is
// anonymous and sees nothing.
//
// A server with ACLs keeps them in memory like all its data: after Restart
// only the management token exists again (policies and tokens made through
// the API are gone), and a restarted secondary DC must re-replicate them.
func WithACL(token string) Option {
	return func(s *Server) {
		s.acl = &aclSettings{token: token, recovery: mustUUID()}
		s.token = token
	}
}

// secondary reports whether the server is an ACL secondary (a federation
// member outside the primary DC): it resolves tokens through the primary
// until it has replicated them.
func (s *Server) secondary() bool {
	return s.acl != nil && s.acl.primary != "" && s.acl.primary != s.DC
}

func (s *Server) aclHCL() string {
	primary := s.acl.primary
	if primary == "" {
		primary = s.DC
	}
	var tokens strings.Builder
	fmt.Fprintf(&tokens, "    agent = %q\n    agent_recovery = %q\n", s.acl.token, s.acl.recovery)
	replication := ""
	if s.secondary() {
		fmt.Fprintf(&tokens, "    replication = %q\n", s.acl.token)
		replication = "  enable_token_replication = true\n"
	} else {
		fmt.Fprintf(&tokens, "    initial_management = %q\n", s.acl.token)
	}
	return fmt.Sprintf(`primary_datacenter = %q
acl {
  enabled = true
  default_policy = "deny"
  enable_token_persistence = true
%s  tokens {
%s  }
}`, primary, replication, tokens.String())
}

// agentToken is the token for /v1/agent calls.
func (s *Server) agentToken() string {
	if s.acl != nil {
		return s.acl.recovery
	}
	return s.token
}

func mustUUID() string {
	id, err := uuid.GenerateUUID()
	if err != nil {
		panic(fmt.Sprintf("harness: uuid: %v", err)) // crypto/rand failed: nothing works
	}
	return id
}

// CreatePolicy creates an ACL policy with the given rules (HCL) and
// returns its ID. In a federation, create policies in the primary DC and
// wait for Federation.WaitACLReplicated before relying on them elsewhere.
func (s *Server) CreatePolicy(t testing.TB, name, rules string) string {
	t.Helper()
	ctx, cancel := callContext()
	defer cancel()
	p, _, err := s.api.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("harness: consul %s: create ACL policy %s: %v", s.DC, name, err)
	}
	return p.ID
}

// UpdatePolicy replaces the rules of policy id (named name).
func (s *Server) UpdatePolicy(t testing.TB, id, name, rules string) {
	t.Helper()
	ctx, cancel := callContext()
	defer cancel()
	if _, _, err := s.api.ACL().PolicyUpdate(&api.ACLPolicy{ID: id, Name: name, Rules: rules}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		t.Fatalf("harness: consul %s: update ACL policy %s: %v", s.DC, name, err)
	}
}

// CreateToken creates a token holding the given policies and returns its
// secret. The token is global in a federation (it replicates to every DC).
func (s *Server) CreateToken(t testing.TB, description string, policyIDs ...string) string {
	t.Helper()
	links := make([]*api.ACLTokenPolicyLink, len(policyIDs))
	for i, id := range policyIDs {
		links[i] = &api.ACLTokenPolicyLink{ID: id}
	}
	ctx, cancel := callContext()
	defer cancel()
	tok, _, err := s.api.ACL().TokenCreate(&api.ACLToken{Description: description, Policies: links}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("harness: consul %s: create ACL token %q: %v", s.DC, description, err)
	}
	return tok.SecretID
}

// WaitACLReplicated waits until every secondary DC has replicated the
// primary's ACL policies and tokens as they are now, so a token or policy
// just created or edited in the primary means the same in every DC.
func (f *Federation) WaitACLReplicated(t testing.TB) {
	t.Helper()
	primary := f.servers[f.dcs[0]]
	if primary.acl == nil {
		t.Fatal("harness: WaitACLReplicated: the federation runs without ACLs")
	}
	policies, tokens := primary.tableIndex(t, "/v1/acl/policies"), primary.tableIndex(t, "/v1/acl/tokens")
	Eventually(t, FederationTimeout, func() error {
		for _, dc := range f.dcs[1:] {
			var st api.ACLReplicationStatus
			if err := f.servers[dc].getJSON("/v1/acl/replication", &st); err != nil {
				return err
			}
			if !st.Running || st.ReplicatedIndex < policies || st.ReplicatedTokenIndex < tokens {
				return fmt.Errorf("%s: ACL replication at policies %d, tokens %d (running %t); the primary is at %d, %d",
					dc, st.ReplicatedIndex, st.ReplicatedTokenIndex, st.Running, policies, tokens)
			}
		}
		return nil
	})
}

// tableIndex is the X-Consul-Index of a list endpoint: its table's index.
func (s *Server) tableIndex(t testing.TB, path string) uint64 {
	t.Helper()
	ctx, cancel := callContext()
	defer cancel()
	var out any
	meta, err := s.api.Raw().Query(path, &out, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("harness: consul %s: GET %s: %v", s.DC, path, err)
	}
	return meta.LastIndex
}
