package admin

import (
	"time"

	"github.com/gwsync/gwsync/syncer"
)

// The admin API's JSON documents, shared by the server and Client.

// ErrorResponse is the body of every 4xx and 5xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
	// KnownGateways is set when the request named an unknown gateway.
	KnownGateways []string `json:"known_gateways,omitempty"`
}

// StatusResponse is GET /v1/status.
type StatusResponse struct {
	// Ready: every gateway has completed a full sync since start.
	Ready bool `json:"ready"`
	syncer.Status
}

// ResyncRequest is the body (or query) of POST /v1/resync.
type ResyncRequest struct {
	// Gateway to resync; "" means every gateway, one after the other.
	Gateway string `json:"gateway,omitempty"`
	// Service limits the resync to one service of Gateway (which it needs).
	Service string `json:"service,omitempty"`
	// Force applies deletes the mass-delete guard would hold and bypasses
	// the shared read cache.
	Force bool `json:"force,omitempty"`
}

// Resync states.
const (
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	// StatePending is a gateway of a multi-gateway resync not started yet.
	StatePending = "pending"
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
	Started     time.Time         `json:"started,omitzero"`
	Finished    time.Time         `json:"finished,omitzero"`
}
