package config

import (
	"strings"
	"testing"
)

func TestParseSchedule(t *testing.T) {
	good := []string{"@every 5m", "*/1 * * * *", "@hourly", "TZ=UTC 0 9 * * 1-5", "CRON_TZ=UTC @every 1m"}
	for _, spec := range good {
		if s, err := ParseSchedule(spec); err != nil || s == nil {
			t.Errorf("ParseSchedule(%q) = %v, %v", spec, s, err)
		}
	}
	// robfig/cron panics on a time-zone prefix with nothing after it.
	bad := map[string]string{
		"TZ=UTC":                 "with no schedule after it",
		"CRON_TZ=":               "with no schedule after it",
		"TZ=UTC ":                "with no schedule after it",
		"":                       "empty spec",
		"every 15s":              "expected exactly 5 fields",
		"TZ=Nowhere/x":           "with no schedule after it",
		"@every":                 "unrecognized descriptor",
		"TZ=Nowhere/x * * * * *": "provided bad location",
	}
	for spec, msg := range bad {
		s, err := ParseSchedule(spec)
		if err == nil || !strings.Contains(err.Error(), msg) || s != nil {
			t.Errorf("ParseSchedule(%q) = %v, %v; want an error containing %q", spec, s, err, msg)
		}
	}
}

// FuzzParseSchedule: any spec gives a schedule or an error, never a panic;
// a schedule that loads measures to sane periods.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"@every 5m", "*/5 9-17 * * 1-5", "TZ=UTC", "CRON_TZ=UTC 0 0 29 2 *", "@every -1s", "0 0 30 2 *", "@monthly"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSchedule(spec)
		if err != nil {
			return
		}
		if s == nil {
			t.Fatal("no schedule and no error")
		}
		if p, err := measure(s); err == nil && (p.shortest <= 0 || p.shortest > p.longest) {
			t.Fatalf("periods %+v of %q", p, spec)
		}
	})
}
