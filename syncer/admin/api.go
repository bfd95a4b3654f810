package admin

import (
	"fmt"
	"time"
)

// The admin API's JSON documents, shared by the server and Client. The
// package owns them: the controller's types carry no JSON tags, and
// convert.go maps them to these, so a change inside the controller never
// silently changes the wire format. Field names stay those of earlier
// releases; new fields are optional (omitted when empty or unknown).

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
	// KnownGateways is set when the request named an unknown gateway.
	KnownGateways []string `json:"known_gateways,omitempty"`
	// Owner is set on a 409 for a gateway another replica writes: send
	// the request to its admin address.
	Owner *Owner `json:"owner,omitempty"`
}

// Owner names the controller replica that writes a gateway (holds its
// lock): its replica id and the address of its admin API.
type Owner struct {
	Replica string `json:"replica"`
	Address string `json:"address,omitempty"`
}

// Roles of a replica in StatusResponse.Role.
const (
	// RoleOwner: this replica writes every configured gateway (always the
	// case with a single replica).
	RoleOwner = "owner"
	// RoleMixed: it writes some gateways; other replicas write the rest.
	RoleMixed = "mixed"
	// RoleStandby: it writes none; it is ready, and takes gateways over
	// when their owners go.
	RoleStandby = "standby"
)

// StatusResponse is GET /v1/status.
type StatusResponse struct {
	// Ready: every gateway this replica writes has completed a full sync
	// since it began writing it (a standby is ready).
	Ready bool `json:"ready"`
	// Replica is this replica's id ("" when the controller runs without
	// replicas); Role is RoleOwner, RoleMixed or RoleStandby.
	Replica     string          `json:"replica,omitempty"`
	Role        string          `json:"role"`
	Gateways    []GatewayStatus `json:"gateways"`
	Datacenters []DCHealth      `json:"datacenters"`
}

// GatewayStatus is one gateway's state as this replica sees it. For a
// gateway another replica writes, Owner names it and the sync fields are
// this replica's last knowledge (Synced is false).
type GatewayStatus struct {
	Name             string    `json:"name"`
	SourceDatacenter string    `json:"source_datacenter"`
	Synced           bool      `json:"synced"`
	Generation       uint64    `json:"generation"`
	LastRun          time.Time `json:"last_run"`
	LastSuccess      time.Time `json:"last_success"`
	LastError        string    `json:"last_error,omitempty"`
	LastErrorAt      time.Time `json:"last_error_at"`
	// Services and Instances are mirrored; Covered counts the services the
	// mirror is authoritative for (its coverage record), empty ones too.
	Services    int    `json:"services"`
	Instances   int    `json:"instances"`
	Covered     int    `json:"covered"`
	DeletesHeld int    `json:"deletes_held"`
	HeldReason  string `json:"held_reason,omitempty"`
	Kept        int    `json:"services_kept"`
	// Problems counts instances the last full cycle could not mirror;
	// LastProblem describes one of them.
	Problems    int    `json:"problems"`
	LastProblem string `json:"last_problem,omitempty"`
	// Vouching: the marker heartbeat runs (resolvers trust the mirror).
	Vouching bool `json:"vouching"`
	// Owned: this replica writes the gateway.
	Owned bool `json:"owned"`
	// Owner is the replica that writes it, when replicas share the
	// gateways (nil without replicas, or while no replica holds it).
	Owner *Owner `json:"owner,omitempty"`
	// Selection is the gateway's effective service selection (its own
	// services block, or the global one).
	Selection Selection `json:"selection"`
}

// Selection is a gateway's effective service selection.
type Selection struct {
	Include []string `json:"include"`
	Exclude []string `json:"exclude"`
	Tags    []string `json:"tags,omitempty"`
}

// String renders a selection on one line.
func (s Selection) String() string {
	out := fmt.Sprintf("include %v, exclude %v", s.Include, s.Exclude)
	if len(s.Tags) > 0 {
		out += fmt.Sprintf(", tags %v", s.Tags)
	}
	return out
}

// DCHealth is the health of this replica's reads from one public DC.
type DCHealth struct {
	Datacenter string    `json:"datacenter"`
	LastOK     time.Time `json:"last_ok"`
	LastError  string    `json:"last_error,omitempty"`
	LastErrAt  time.Time `json:"last_error_at"`
	Failures   int       `json:"consecutive_failures"`
	// RetryAt: after consecutive failures, reads from the DC are paused
	// until then (zero: not backing off).
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Events is the DC's change feed (blocking queries), when the event
	// path runs.
	Events *DCEvents `json:"events,omitempty"`
}

// DCEvents is the state of the blocking queries that watch one public DC.
type DCEvents struct {
	// Watching: every loop holds a current list and waits for the next
	// change (no loop is connecting or backing off).
	Watching bool        `json:"watching"`
	Loops    []EventLoop `json:"loops"`
}

// EventLoop is one blocking-query loop of a DC's change feed.
type EventLoop struct {
	// Loop is "health" or "catalog"; State "connecting", "watching" or
	// "backoff".
	Loop  string `json:"loop"`
	State string `json:"state"`
	// LastWake is when the last answer arrived; WakeUps counts answers,
	// Changes the services they showed changed.
	LastWake            time.Time `json:"last_wake,omitzero"`
	WakeUps             uint64    `json:"wakeups"`
	Changes             uint64    `json:"changes"`
	LastError           string    `json:"last_error,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Index               uint64    `json:"index"`
}

// ResyncRequest is the JSON body of POST /v1/resync. The same fields, as
// query parameters, scope GET /v1/diff.
type ResyncRequest struct {
	// Gateway to resync; "" means every gateway this replica writes, one
	// after the other.
	Gateway string `json:"gateway,omitempty"`
	// Service limits the resync to one service of Gateway (which it needs).
	Service string `json:"service,omitempty"`
	// Force applies deletes the mass-delete guard would hold, and reads
	// the source and the mirror fresh.
	Force bool `json:"force,omitempty"`
}

// Resync states.
const (
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	// StatePending is a gateway of a multi-gateway resync not started yet.
	StatePending = "pending"
	// StateSkipped is a gateway of a resync of every gateway that another
	// replica writes (its Owner says which): resync it there.
	StateSkipped = "skipped"
)

// Resync is a forced resync's record: POST /v1/resync answers with it (202)
// and GET /v1/resync/<id> reports it as it runs and once it has finished.
type Resync struct {
	ID      string    `json:"id"`
	Gateway string    `json:"gateway,omitempty"`
	Service string    `json:"service,omitempty"`
	Force   bool      `json:"force"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	// Finished is zero while the resync runs.
	Finished time.Time `json:"finished,omitzero"`
	// Done and Total count services read from the source so far, summed
	// over the gateways that have started (Total grows as they start).
	Done  int `json:"done"`
	Total int `json:"total"`
	// Adds, Updates, Deletes (instances) and DeletesHeld sum the gateways'
	// outcomes.
	Adds        int `json:"adds"`
	Updates     int `json:"updates"`
	Deletes     int `json:"deletes"`
	DeletesHeld int `json:"deletes_held"`
	// Gateways holds one entry per gateway in scope, in configuration order.
	Gateways []ResyncGateway `json:"gateways"`
}

// Ended reports whether the resync has finished.
func (r Resync) Ended() bool { return r.State == StateSucceeded || r.State == StateFailed }

// ResyncGateway is one gateway's part of a resync.
type ResyncGateway struct {
	Gateway     string            `json:"gateway"`
	State       string            `json:"state"`
	Done        int               `json:"done"`
	Total       int               `json:"total"`
	Complete    bool              `json:"complete"`
	Adds        int               `json:"adds"`
	Updates     int               `json:"updates"`
	Deletes     int               `json:"deletes"`
	DeletesHeld int               `json:"deletes_held"`
	HeldReason  string            `json:"held_reason,omitempty"`
	Kept        map[string]string `json:"kept,omitempty"`
	Errors      []string          `json:"errors,omitempty"`
	// Problems lists instances that could not be mirrored (bounded).
	Problems []string  `json:"problems,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Owner is set on a skipped part: the replica that writes the gateway.
	Owner *Owner `json:"owner,omitempty"`
}

// Result is a dry run's outcome (GET /v1/diff): what a sync would change.
type Result struct {
	Gateway string `json:"gateway"`
	// Service is the one service in scope ("" for the whole gateway).
	Service  string    `json:"service,omitempty"`
	Scope    string    `json:"scope"`
	DryRun   bool      `json:"dry_run"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Complete: the source was read in full.
	Complete    bool              `json:"complete"`
	Adds        int               `json:"adds"`
	Updates     int               `json:"updates"`
	Deletes     int               `json:"deletes"`
	DeletesHeld int               `json:"deletes_held"`
	HeldReason  string            `json:"held_reason,omitempty"`
	Kept        map[string]string `json:"kept,omitempty"`
	Errors      []string          `json:"errors,omitempty"`
	Problems    []string          `json:"problems,omitempty"`
	Changes     []Change          `json:"changes,omitempty"`
	// ChangesOmitted counts a whole gateway's changes past its first
	// 1,000 deletes and 1,000 other changes, not listed (the counts above
	// are exact).
	ChangesOmitted int `json:"changes_omitted,omitempty"`
	// Selection is the gateway's effective service selection.
	Selection Selection `json:"selection"`
	// Services and Instances are mirrored (as the mirror stands).
	Services  int `json:"services"`
	Instances int `json:"instances"`
	TxnOps    int `json:"txn_ops"`
}

// Change is one planned write and the reason for it.
type Change struct {
	// Op is add, update or delete; Kind is node or service.
	Op      string `json:"op"`
	Kind    string `json:"kind"`
	Node    string `json:"node"`
	Service string `json:"service,omitempty"`
	ID      string `json:"id,omitempty"`
	Reason  string `json:"reason"`
}
