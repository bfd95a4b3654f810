package main

import (
	"fmt"
	"strings"
	"time"
)

// eventTimeout bounds the wait for a change to reach the gateway through
// the event path; it normally takes well under a second.
const eventTimeout = 10 * time.Second

// showEventPath registers a new instance in the public Consul and times it
// into edge-a's dedicated cluster and into the gateway's answers, while
// the next full reconcile is minutes away: the event path (blocking
// queries on the public cluster) carried it.
func (d *demo) showEventPath() error {
	d.say("a new backend web-4 in dc1: the event path brings it to the gateway (the full reconcile runs every 5m)")
	start := time.Now()
	port, err := d.startBackend("web-4", "web", "dc1")
	if err != nil {
		return err
	}
	d.line("web-4  service web  in dc1  http://127.0.0.1:%d", port)
	var mirrored time.Duration
	err = poll(d.done, eventTimeout, "web-4 in edge-a's dedicated cluster", func() error {
		entries, _, err := d.edgeA.api.Catalog().Service("web", "", nil)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.ServiceID == "web-4" {
				mirrored = time.Since(start)
				return nil
			}
		}
		return fmt.Errorf("not mirrored yet")
	})
	if err != nil {
		return err
	}
	sent := 0
	err = poll(d.done, eventTimeout, "the gateway answering from web-4", func() error {
		sent++
		r, err := d.get("/web/")
		if err != nil {
			return err
		}
		if !strings.Contains(r.body, "web-4") {
			return fmt.Errorf("GET /web/ -> %s", r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.line("in edge-a's dedicated cluster after %s; answering through the gateway after %s (%d requests)",
		roundMs(mirrored), roundMs(time.Since(start)), sent)
	return nil
}
