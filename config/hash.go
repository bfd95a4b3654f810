package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/robfig/cron/v3"
)

// Hash is a stable digest of the effective configuration without its
// secrets (every token) and without what belongs to one replica alone
// (ha.replica_id, and admin.address: replicas on one host, or each bound
// to its host's address, listen on different addresses and still share the
// gateways), so controller replicas can tell that they run different
// configurations. Two files that differ only in layout, comments, defaults
// written out or tokens hash the same; an "@every" schedule counts by its
// duration. A different gwsync version may hash the same file differently.
func (c *Config) Hash() string {
	v := *c
	v.Warnings = nil
	v.Public.Token, v.Public.ReadToken = "", ""
	v.Admin.Token, v.Admin.Address = "", ""
	v.HA.ReplicaID = ""
	v.Gateways = slices.Clone(c.Gateways)
	for i := range v.Gateways {
		g := &v.Gateways[i]
		g.Dedicated.Token, g.ReadToken = "", ""
		if c, ok := g.Spec.(cron.ConstantDelaySchedule); ok {
			g.Schedule = "@every " + c.Delay.String() // "@every 60s" runs as "@every 1m"
		}
		g.Spec = nil // Schedule, Period and MaxGap stand for it
	}
	b, err := json.Marshal(v)
	if err != nil { // only plain fields are left; kept deterministic regardless
		b = fmt.Appendf(nil, "%+v", v)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
