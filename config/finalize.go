package config

import (
	"strings"
	"time"
)

// finalize computes the values derived from several blocks and checks the
// rules that link them. Each problem is reported at the key the user most
// likely has to change: the one written in the file, not a default.
func (l *loader) finalize(cfg *Config) {
	l.lowerShareWindow(cfg)
	l.checkSyncAge(cfg)
	l.checkMarkerAge(cfg.Mirror.MarkerInterval, cfg.Resolver.MaxMarkerAge)
	l.checkTakeover(cfg)
	l.warnEventsOff(cfg)
}

// checkTakeover: while no replica writes a gateway (its writer died and the
// lock has not been taken over yet), nobody refreshes its marker, which may
// already be one marker_interval old. A worst-case takeover longer than
// max_marker_age - marker_interval would make resolvers distrust a healthy
// mirror during every takeover.
func (l *loader) checkTakeover(cfg *Config) {
	limit := cfg.Resolver.MaxMarkerAge - cfg.Mirror.MarkerInterval
	if cfg.HA.TakeoverBound <= limit {
		return
	}
	key, block := "session_ttl", "ha"
	if !l.has("session_ttl", "ha") && l.has("lock_delay", "ha") {
		key = "lock_delay"
	}
	if !l.has(key, block) && l.has("max_marker_age", "resolver") {
		key, block = "max_marker_age", "resolver"
	}
	l.at(l.attrRange(key, block), "ha: worst-case takeover 2 x session_ttl + lock_delay = %s is longer than resolver.max_marker_age - mirror.marker_interval (%s): resolvers would distrust a healthy mirror during a takeover",
		fmtDur(cfg.HA.TakeoverBound), fmtDur(limit))
}

// lowerShareWindow caps the share window at half the shortest schedule
// period: results are shared between gateways reconciling at about the
// same time, never reused by the next cycle of the same gateway (that would
// add a whole period to propagation).
func (l *loader) lowerShareWindow(cfg *Config) {
	shortest := -1
	for i, g := range cfg.Gateways {
		if g.Period > 0 && (shortest < 0 || g.Period < cfg.Gateways[shortest].Period) {
			shortest = i
		}
	}
	if shortest < 0 || cfg.Gateways[shortest].Period/2 >= cfg.Query.ConfiguredShareWindow {
		return
	}
	g := cfg.Gateways[shortest]
	cfg.Query.ShareWindow = g.Period / 2
	rng := l.attrRange("share_window", "query")
	if !l.has("share_window", "query") {
		rng = l.attrRange("schedule", gatewayStep(shortest))
	}
	l.warn(rng, "share_window lowered from %s to %s: half the shortest schedule period (gateway %q, %q), so no gateway reuses its own previous cycle's answers",
		fmtDur(cfg.Query.ConfiguredShareWindow), fmtDur(cfg.Query.ShareWindow), g.Name, g.Schedule)
}

// checkSyncAge: the controller stops vouching for a mirror once its last
// complete full sync is older than max_sync_age. A full sync runs every
// schedule gap (plus its own duration), so max_sync_age must cover two
// gaps; less, and a healthy mirror would lose its vouching between two
// full syncs, and resolvers would distrust it.
func (l *loader) checkSyncAge(cfg *Config) {
	age := cfg.Mirror.MaxSyncAge
	if l.has("max_sync_age", "mirror") {
		var worst *Gateway
		for i := range cfg.Gateways {
			if g := &cfg.Gateways[i]; age < 2*g.MaxGap && (worst == nil || g.MaxGap > worst.MaxGap) {
				worst = g
			}
		}
		if worst != nil {
			l.at(l.attrRange("max_sync_age", "mirror"), "max_sync_age %s: must be at least 2 x the longest gap between two full syncs (gateway %q, schedule %q: %s), else the controller stops vouching for a healthy mirror between two full syncs and resolvers distrust it",
				fmtDur(age), worst.Name, worst.Schedule, fmtDur(worst.MaxGap))
		}
		return
	}
	for i, g := range cfg.Gateways {
		if age < 2*g.MaxGap {
			l.at(l.attrRange("schedule", gatewayStep(i)), "schedule %q: runs up to %s apart, more than half of mirror.max_sync_age (%s): the controller would stop vouching for a healthy mirror between two full syncs and resolvers would distrust it",
				g.Schedule, fmtDur(g.MaxGap), fmtDur(age))
		}
	}
}

// checkMarkerAge: the controller refreshes the marker every
// marker_interval; a resolver distrusts it after max_marker_age. More than
// two intervals lets one heartbeat be lost or late without a healthy mirror
// ever looking stale.
func (l *loader) checkMarkerAge(interval, maxAge time.Duration) {
	if maxAge > 2*interval {
		return
	}
	if l.has("max_marker_age", "resolver") || !l.has("marker_interval", "mirror") {
		l.at(l.attrRange("max_marker_age", "resolver"), "max_marker_age %s: must be more than 2 x mirror.marker_interval (%s), else resolvers would distrust a healthy mirror after one late heartbeat",
			fmtDur(maxAge), fmtDur(interval))
		return
	}
	l.at(l.attrRange("marker_interval", "mirror"), "marker_interval %s: resolver.max_marker_age (%s) must be more than 2 x marker_interval, else resolvers would distrust a healthy mirror after one late heartbeat",
		fmtDur(interval), fmtDur(maxAge))
}

// warnEventsOff: with the event path off, the schedule is the only way a
// change reaches a mirror, and the default schedule is a safety net.
func (l *loader) warnEventsOff(cfg *Config) {
	if cfg.Events.Enabled {
		return
	}
	var names []string
	for i, g := range cfg.Gateways {
		if !l.has("schedule", gatewayStep(i)) {
			names = append(names, g.Name)
		}
	}
	if len(names) > 0 {
		l.warn(l.attrRange("enabled", "events"), "events are disabled, so changes reach a mirror only on its schedule, and gateways without one (%s) run the default %q: changes up to %s late; set schedule to how fast changes must propagate",
			strings.Join(names, ", "), DefaultSchedule, strings.TrimPrefix(DefaultSchedule, "@every "))
	}
}
