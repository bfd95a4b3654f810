package admin

import (
	"fmt"
	"net/http"
)

// Ownership is implemented by a controller whose replicas share the
// gateways (HA): each gateway is written by the one replica that holds its
// lock. The admin server then names owners in status, and refuses a
// resync or diff of a gateway another replica writes (409, naming it) so
// that the caller asks the owner: only the owner's model, guard state and
// lock are current, and only it can write.
type Ownership interface {
	// Replica returns this replica's id.
	Replica() string
	// Owner returns the replica that writes gateway and the address of its
	// admin API ("" if it advertises none), and whether that is this
	// replica. replica is "" while no replica holds the gateway (or its
	// lock has not been read yet).
	Owner(gateway string) (replica, address string, self bool)
}

// checkOwner returns nil if this replica writes gateway (or the
// controller runs without replicas); else an error naming the owner (409),
// or saying no replica holds it right now (503).
func (s *Server) checkOwner(gateway string) error {
	o, self := s.ownerOf(gateway)
	switch {
	case self:
		return nil
	case o == nil:
		return &apiError{code: http.StatusServiceUnavailable, msg: fmt.Sprintf(
			"gateway %s: no controller replica holds it right now (this is replica %s); another replica takes it over within the takeover bound: retry then",
			gateway, s.owners.Replica())}
	case o.Address == "":
		return &apiError{code: http.StatusConflict, owner: o, msg: fmt.Sprintf(
			"gateway %s is written by replica %s, not by this replica (%s): send the request to that replica's admin API", gateway, o.Replica, s.owners.Replica())}
	default:
		return &apiError{code: http.StatusConflict, owner: o, msg: fmt.Sprintf(
			"gateway %s is written by replica %s (admin API at %s), not by this replica (%s): send the request there", gateway, o.Replica, o.Address, s.owners.Replica())}
	}
}

// ownerOf returns who writes gateway (nil: nobody, or no replicas) and
// whether it is this replica.
func (s *Server) ownerOf(gateway string) (*Owner, bool) {
	if s.owners == nil {
		return nil, true
	}
	replica, address, self := s.owners.Owner(gateway)
	if replica == "" {
		return nil, self
	}
	return &Owner{Replica: replica, Address: address}, self
}

// withOwners names each gateway's owner in a status. Ownership is the
// one source of who writes what: Owned follows it too, so status, role
// and the 409 of a misdirected request always agree.
func (s *Server) withOwners(st *StatusResponse) {
	if s.owners == nil {
		return
	}
	st.Replica = s.owners.Replica()
	for i := range st.Gateways {
		st.Gateways[i].Owner, st.Gateways[i].Owned = s.ownerOf(st.Gateways[i].Name)
	}
}
