package ha

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Roles of a replica.
const (
	// RoleOwner: this replica holds at least one gateway.
	RoleOwner = "owner"
	// RoleStandby: it holds none; it is ready and takes gateways over when
	// their owners go.
	RoleStandby = "standby"
)

// Member is a live controller replica, as seen through the membership keys
// of the dedicated clusters this replica reaches.
type Member struct {
	Replica    string    `json:"replica"`
	Address    string    `json:"address,omitempty"`
	ConfigHash string    `json:"config_hash,omitempty"`
	Since      time.Time `json:"since"`
	// Self is this replica.
	Self bool `json:"self,omitempty"`
	// ConfigMatch: it runs our configuration, so it shares the gateways
	// with us; a replica with another configuration is left alone.
	ConfigMatch bool `json:"config_match"`
	// Gateways whose dedicated clusters hold its membership key (the
	// clusters it reaches, as far as we can see).
	Gateways []string `json:"gateways"`
}

// GatewayOwner is who holds a gateway's lock, as read from the lock key.
type GatewayOwner struct {
	Gateway  string `json:"gateway"`
	SourceDC string `json:"source_dc"`
	// Known: the lock has been read since our current session began.
	Known bool `json:"known"`
	// Held: some session holds the lock. Replica, Address, ConfigHash and
	// Since come from its value.
	Held       bool      `json:"held"`
	Replica    string    `json:"replica,omitempty"`
	Address    string    `json:"address,omitempty"`
	ConfigHash string    `json:"config_hash,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	// Self: this replica holds a lease on it.
	Self bool `json:"self,omitempty"`
	// Preferred is its preferred owner in this replica's view.
	Preferred string `json:"preferred,omitempty"`
	// LastEvent is this replica's last transition on the gateway
	// (acquired, released, lost, fenced) and when it happened.
	LastEvent   string    `json:"last_event,omitempty"`
	LastEventAt time.Time `json:"last_event_at,omitzero"`
}

// Status is this replica's view, for the admin API and `gwsync status`.
type Status struct {
	Replica string         `json:"replica"`
	Address string         `json:"address,omitempty"`
	Role    string         `json:"role"`
	Owners  []GatewayOwner `json:"owners"`
	Members []Member       `json:"members"`
}

// Owners returns every gateway's owner, in configuration order.
func (c *Coordinator) Owners() []GatewayOwner {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ownersLocked()
}

func (c *Coordinator) ownersLocked() []GatewayOwner {
	owner := Assign(c.opts.Gateways, c.groupLocked())
	out := make([]GatewayOwner, 0, len(c.gws))
	for _, g := range c.gws {
		o := GatewayOwner{Gateway: g.Name, SourceDC: g.SourceDC, Known: g.lock.known,
			Held: g.lock.session != "", Self: g.lease != nil, Preferred: owner[g.Name],
			LastEvent: g.lastEvent, LastEventAt: g.lastEventAt}
		if g.holderOK {
			o.Replica, o.Address, o.ConfigHash, o.Since = g.holder.Replica, g.holder.Address, g.holder.ConfigHash, g.holder.Since
		}
		out = append(out, o)
	}
	return out
}

// Members returns the live replicas seen across the clusters, sorted by
// replica ID; this replica is always included.
func (c *Coordinator) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.membersLocked()
}

func (c *Coordinator) membersLocked() []Member {
	out := make([]Member, 0, len(c.members)+1)
	self := false
	for _, m := range c.members {
		m.Gateways = slices.Clone(m.Gateways)
		out = append(out, m)
		self = self || m.Self
	}
	if !self {
		h := c.self()
		out = append(out, Member{Replica: h.Replica, Address: h.Address, ConfigHash: h.ConfigHash, Since: h.Since,
			Self: true, ConfigMatch: true, Gateways: []string{}})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Replica, b.Replica) })
	return out
}

// Role returns RoleOwner while this replica holds a gateway, else
// RoleStandby. Both are ready.
func (c *Coordinator) Role() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.roleLocked()
}

func (c *Coordinator) roleLocked() string {
	for _, g := range c.gws {
		if g.lease != nil {
			return RoleOwner
		}
	}
	return RoleStandby
}

// Status returns the whole view at once (one consistent snapshot).
func (c *Coordinator) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{Replica: c.opts.Replica, Address: c.opts.Address, Role: c.roleLocked(),
		Owners: c.ownersLocked(), Members: c.membersLocked()}
}

// Owner returns the owner of one gateway, and false for an unknown gateway;
// the admin API uses it to forward or refuse a request for a gateway this
// replica does not hold.
func (c *Coordinator) Owner(gateway string) (GatewayOwner, bool) {
	for _, o := range c.Owners() {
		if o.Gateway == gateway {
			return o, true
		}
	}
	return GatewayOwner{}, false
}

// NotOwnerError says a request for a gateway reached a replica that does
// not hold it, and names the holder (if any) so the caller can forward it.
type NotOwnerError struct {
	Replica string // this replica
	Owner   GatewayOwner
}

func (e *NotOwnerError) Error() string {
	o := e.Owner
	switch {
	case !o.Held:
		return "gateway " + o.Gateway + ": no replica holds it right now (replica " + e.Replica + " does not)"
	case o.Address != "":
		return "gateway " + o.Gateway + " is owned by replica " + o.Replica + " at " + o.Address + ", not by " + e.Replica
	default:
		return "gateway " + o.Gateway + " is owned by replica " + o.Replica + ", not by " + e.Replica
	}
}

// CheckOwner returns nil if this replica holds a lease on gateway, a
// *NotOwnerError naming the holder if it does not, or an error for an
// unknown gateway.
func (c *Coordinator) CheckOwner(gateway string) error {
	o, ok := c.Owner(gateway)
	switch {
	case !ok:
		return fmt.Errorf("ha: unknown gateway %q", gateway)
	case o.Self:
		return nil
	default:
		return &NotOwnerError{Replica: c.opts.Replica, Owner: o}
	}
}
