package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser accepts the standard 5-field spec and descriptors (@every …).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a gateway schedule the way the controller runs it.
// Loading already did this for every gateway (Gateway.Spec); it stays for
// callers that parse a schedule of their own.
func ParseSchedule(spec string) (sched cron.Schedule, err error) {
	// robfig/cron v3 slices past the end of a time-zone prefix that no
	// schedule follows ("TZ=UTC"), and panics; catch that case first, and
	// any other panic of the parser, so bad input is an error.
	if tz, rest, ok := cutTZ(spec); ok && strings.TrimSpace(rest) == "" {
		return nil, fmt.Errorf("time zone %q with no schedule after it", tz)
	}
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("cannot be parsed: %v", r)
		}
	}()
	return cronParser.Parse(spec)
}

// cutTZ splits a "TZ=zone" or "CRON_TZ=zone" prefix off spec.
func cutTZ(spec string) (tz, rest string, ok bool) {
	if !strings.HasPrefix(spec, "TZ=") && !strings.HasPrefix(spec, "CRON_TZ=") {
		return "", spec, false
	}
	_, after, _ := strings.Cut(spec, "=")
	tz, rest, _ = strings.Cut(after, " ")
	return tz, rest, true
}

// Sampling of a cron spec's runs. A spec's gaps repeat at most weekly
// unless it names days of the month or months, so eight days of runs show
// the shortest and longest gap of nearly every spec; a monthly spec is
// followed for at least two gaps. The cap bounds a minutely spec (11,520
// runs in eight days, about 20ms, paid once per distinct spec at load) and
// an adversarial one. The start is fixed (a Monday, UTC instant, read in the spec's own time
// zone), so the same spec always yields the same periods.
var sampleStart = time.Date(2025, time.January, 6, 0, 0, 0, 0, time.UTC)

const (
	sampleSpan    = 8 * 24 * time.Hour
	sampleMaxRuns = 12000
)

type periods struct {
	shortest, longest time.Duration
}

// schedule parses a gateway's schedule and measures its periods, reporting
// problems at the gateway's schedule attribute.
func (l *loader) schedule(spec, step string) (cron.Schedule, time.Duration, time.Duration) {
	sched, err := ParseSchedule(spec)
	if err == nil {
		err = checkEvery(spec, sched)
	}
	var p periods
	if err == nil {
		p, err = l.periodsOf(spec, sched)
	}
	if err != nil {
		l.at(l.attrRange("schedule", step), "schedule %q: %v", spec, err)
		return nil, 0, 0
	}
	return sched, p.shortest, p.longest
}

// checkEvery rejects an "@every" duration that cron would silently change:
// it runs at least a second apart, on whole seconds.
func checkEvery(spec string, sched cron.Schedule) error {
	c, ok := sched.(cron.ConstantDelaySchedule)
	if !ok {
		return nil
	}
	_, rest, _ := cutTZ(spec)
	written, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), "@every")))
	if err != nil || written != c.Delay {
		return fmt.Errorf("cron runs @every on whole seconds, at least 1s apart: this runs every %s; write that", fmtDur(c.Delay))
	}
	return nil
}

func (l *loader) periodsOf(spec string, sched cron.Schedule) (periods, error) {
	if p, ok := l.periods[spec]; ok {
		return p, nil
	}
	p, err := measure(sched)
	if err == nil {
		if l.periods == nil {
			l.periods = map[string]periods{}
		}
		l.periods[spec] = p
	}
	return p, err
}

// measure returns the shortest and longest gap between two runs.
func measure(sched cron.Schedule) (periods, error) {
	if c, ok := sched.(cron.ConstantDelaySchedule); ok {
		return periods{shortest: c.Delay, longest: c.Delay}, nil
	}
	t := sched.Next(sampleStart)
	if t.IsZero() {
		return periods{}, errors.New("never runs")
	}
	end := sampleStart.Add(sampleSpan)
	var p periods
	for n := 0; n < sampleMaxRuns && (t.Before(end) || n < 2); n++ {
		next := sched.Next(t)
		if next.IsZero() {
			break // cron looks five years ahead at most
		}
		gap := next.Sub(t)
		if p.shortest == 0 || gap < p.shortest {
			p.shortest = gap
		}
		p.longest = max(p.longest, gap)
		t = next
	}
	if p.shortest <= 0 {
		return periods{}, errors.New("runs only once")
	}
	return p, nil
}
