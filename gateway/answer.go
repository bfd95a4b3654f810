package gateway

import (
	"time"

	"github.com/gwsync/gwsync/mirror"
)

// Source tells where an answer came from.
type Source uint8

// Sources of an answer, in the order the resolver prefers them.
const (
	// SourceNone: no answer (an error was returned).
	SourceNone Source = iota
	// SourceLocal: the gateway's dedicated cluster, synced and healthy.
	SourceLocal
	// SourcePublic: the prepared query executed on the public cluster.
	SourcePublic
	// SourceMemory: the last good answer held in memory, served because
	// the cluster that should refresh it failed or was not trusted.
	SourceMemory
	// SourceSnapshot: an answer loaded from the disk snapshot at start,
	// served because neither cluster could answer.
	SourceSnapshot
	numSources
)

var sourceNames = [numSources]string{"none", "local", "public", "memory", "snapshot"}

// String returns the source's metric label and header value.
func (s Source) String() string {
	if s >= numSources {
		return "unknown"
	}
	return sourceNames[s]
}

// Instance is one healthy service instance, the same whether it was read
// from the mirror or from the public prepared query (package mirror owns
// the conversions).
type Instance = mirror.Instance

// Weights are Consul service weights; only Passing matters for picking.
type Weights = mirror.Weights

// Answer is the resolver's answer for one service. Instances and everything
// they reference are shared and immutable: callers must not modify them.
type Answer struct {
	Service   string
	Instances []Instance
	Source    Source
	// FetchedAt is when the answer was last confirmed by the cluster it came
	// from; Age is how long before the Resolve call that was.
	FetchedAt time.Time
	Age       time.Duration
}

// Empty reports whether the answer has no instances.
func (a *Answer) Empty() bool { return len(a.Instances) == 0 }
