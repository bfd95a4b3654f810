package syncer

import (
	"testing"
	"time"

	"github.com/gwsync/gwsync/config"
)

func TestShareWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		window    time.Duration
		schedules []string
		want      time.Duration
	}{
		{name: "configured window under every period", window: 2 * time.Second, schedules: []string{"@every 15s"}, want: 2 * time.Second},
		{name: "capped at half the shortest period", window: 2 * time.Second, schedules: []string{"@every 15s", "@every 1s"}, want: 500 * time.Millisecond},
		{name: "cron spec", window: 10 * time.Minute, schedules: []string{"*/5 * * * *"}, want: 150 * time.Second},
		{name: "zero stays zero", window: 0, schedules: []string{"@every 1s"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{Query: config.Query{ShareWindow: tt.window}}
			for _, s := range tt.schedules {
				cfg.Gateways = append(cfg.Gateways, config.Gateway{Schedule: s})
			}
			if got := shareWindow(cfg, now); got != tt.want {
				t.Fatalf("shareWindow = %v, want %v", got, tt.want)
			}
		})
	}
}
