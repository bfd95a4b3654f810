package ha

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const ld, settle = 5 * time.Second, 10 * time.Second
	free := lockView{known: true, freeSince: t0}
	ours := lockView{known: true, session: "s-me"}
	theirs := lockView{known: true, session: "s-other"}
	base := func(mod func(*decideInput)) decideInput {
		in := decideInput{now: t0, self: "me", session: "s-me", lock: free, preferred: "me", lockDelay: ld, settle: settle}
		mod(&in)
		return in
	}
	tests := []struct {
		name string
		in   decideInput
		want decision
	}{
		{name: "no trusted session: nothing", in: base(func(in *decideInput) { in.session = "" }), want: decision{}},
		{name: "lock not read yet: nothing", in: base(func(in *decideInput) { in.lock = lockView{} }), want: decision{}},
		{name: "free, preferred: acquire at once", in: base(func(*decideInput) {}), want: decision{act: actAcquire}},
		{name: "free, preferred, retry pending", in: base(func(in *decideInput) { in.retryAt = t0.Add(time.Second) }),
			want: decision{wakeAt: t0.Add(time.Second)}},
		{name: "free, not preferred: wait for the fallback slot", in: base(func(in *decideInput) { in.preferred = "other"; in.rank = 2 }),
			want: decision{wakeAt: t0.Add(FallbackDelay(2, ld))}},
		{name: "free, not preferred, slot reached: acquire", in: base(func(in *decideInput) {
			in.preferred, in.rank, in.now = "other", 2, t0.Add(FallbackDelay(2, ld))
		}), want: decision{act: actAcquire}},
		{name: "free, no preferred owner: fallback", in: base(func(in *decideInput) { in.preferred = "" }),
			want: decision{wakeAt: t0.Add(FallbackDelay(0, ld))}},
		{name: "held by another session: leave it", in: base(func(in *decideInput) { in.lock = theirs }), want: decision{}},
		{name: "held by another, we are preferred: still leave it", in: base(func(in *decideInput) { in.lock = theirs; in.preferredSince = t0 }), want: decision{}},
		{name: "ours, we are preferred: keep", in: base(func(in *decideInput) { in.lock = ours }), want: decision{}},
		{name: "ours, preferred owner not a member of this cluster: keep", in: base(func(in *decideInput) {
			in.lock, in.preferred = ours, "other"
		}), want: decision{}},
		{name: "ours, preferred owner live but not settled: wait", in: base(func(in *decideInput) {
			in.lock, in.preferred, in.preferredSince = ours, "other", t0.Add(-3*time.Second)
		}), want: decision{wakeAt: t0.Add(7 * time.Second)}},
		{name: "ours, preferred owner settled: release", in: base(func(in *decideInput) {
			in.lock, in.preferred, in.preferredSince = ours, "other", t0.Add(-settle)
		}), want: decision{act: actRelease}},
		{name: "ours, settled but handover on hold: wait for the hold", in: base(func(in *decideInput) {
			in.lock, in.preferred, in.preferredSince, in.holdUntil = ours, "other", t0.Add(-time.Hour), t0.Add(time.Minute)
		}), want: decision{wakeAt: t0.Add(time.Minute)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decide(tt.in)
			if got != tt.want {
				t.Errorf("decide = {%s %s}, want {%s %s}", got.act, got.wakeAt.Sub(t0), tt.want.act, tt.want.wakeAt.Sub(t0))
			}
		})
	}
}
