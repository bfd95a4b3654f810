package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// replica is one controller replica: `gwsync run -replica <id>`.
type replica struct {
	id      string
	admin   string
	cfgPath string
	proc    *proc
}

// replicaIDs are the demo's controller replicas. Their deterministic
// assignment gives the first gateway (edge-a, dc1) to r1 and the second
// (edge-b, dc2) to r2.
var replicaIDs = []string{"r1", "r2"}

// startControllers starts every replica, each with its own configuration
// file that differs only in its admin address (a replica's own listener,
// left out of the configuration hash), and waits until each gateway is
// written by its preferred owner and every replica is ready.
func (d *demo) startControllers() error {
	ports, err := freePorts(len(replicaIDs))
	if err != nil {
		return err
	}
	for i, id := range replicaIDs {
		r := &replica{id: id, admin: fmt.Sprintf("127.0.0.1:%d", ports[i]), cfgPath: filepath.Join(d.workdir, "gwsync-"+id+".hcl")}
		if err := os.WriteFile(r.cfgPath, []byte(d.config(r.admin)), 0o600); err != nil {
			return err
		}
		d.say("starting controller replica %s: gwsync run -replica %s -config %s", id, id, r.cfgPath)
		if r.proc, err = d.ps.start("gwsync-run-"+id, d.gwsync, "run", "-replica", id, "-config", r.cfgPath); err != nil {
			return err
		}
		d.replicas = append(d.replicas, r)
	}
	d.admin, d.cfgPath = d.replicas[0].admin, d.replicas[0].cfgPath
	err = d.waitOwners(map[string]string{"edge-a": "r1", "edge-b": "r2"}, d.replicas)
	if err != nil {
		return err
	}
	for _, r := range d.replicas {
		d.line("%s: admin API on http://%s, ready, writes %s", r.id, r.admin, strings.Join(d.owned[r.id], ", "))
	}
	return nil
}

// waitOwners waits until every replica in reps is ready and reports
// exactly the wanted owner (gateway -> replica) for every gateway; it
// records what each replica writes in d.owned.
func (d *demo) waitOwners(want map[string]string, reps []*replica) error {
	ids := make([]string, len(reps))
	for i, r := range reps {
		ids[i] = r.id
	}
	return poll(d.done, switchTimeout, fmt.Sprintf("replicas %s ready, gateways written by %v", strings.Join(ids, ", "), want), func() error {
		owned := map[string][]string{}
		for _, r := range reps {
			if r.proc.exited() {
				return fmt.Errorf("gwsync run -replica %s exited: %v\n%s", r.id, r.proc.err, r.proc.tail(20))
			}
			st, err := r.status(d.client)
			if err != nil {
				return err
			}
			if !st.Ready {
				return fmt.Errorf("replica %s not ready", r.id)
			}
			for _, g := range st.Gateways {
				owner := ""
				switch {
				case g.Owned:
					owner = r.id
					owned[r.id] = append(owned[r.id], g.Name)
				case g.Owner != nil:
					owner = g.Owner.Replica
				}
				if owner != want[g.Name] {
					return fmt.Errorf("replica %s sees %s written by %q", r.id, g.Name, owner)
				}
			}
		}
		for _, gws := range owned {
			sort.Strings(gws)
		}
		d.owned = owned
		return nil
	})
}

// replicaStatus is the part of a replica's GET /v1/status the demo reads
// (the admin API's documented JSON).
type replicaStatus struct {
	Ready    bool `json:"ready"`
	Gateways []struct {
		Name  string `json:"name"`
		Owned bool   `json:"owned"`
		Owner *struct {
			Replica string `json:"replica"`
		} `json:"owner"`
	} `json:"gateways"`
}

func (r *replica) status(c *http.Client) (replicaStatus, error) {
	var st replicaStatus
	resp, err := c.Get("http://" + r.admin + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/status of %s: %s", r.id, resp.Status)
	}
	return st, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
}

// handOver stops replica r2 gracefully: it releases its locks on the way
// out, and r1 writes every gateway within about a second (a replica that
// dies without releasing is replaced within 2 x session TTL + lock-delay,
// 25s with the defaults).
func (d *demo) handOver() error {
	r2 := d.replicas[1]
	d.say("stopping replica %s (SIGTERM): it releases its locks, %s takes its gateways over", r2.id, d.replicas[0].id)
	start := time.Now()
	r2.proc.stop()
	if err := d.waitOwners(map[string]string{"edge-a": "r1", "edge-b": "r1"}, d.replicas[:1]); err != nil {
		return err
	}
	d.line("%s writes %s, %s after the stop", d.replicas[0].id, strings.Join(d.owned["r1"], ", "), roundMs(time.Since(start)))
	return d.showStatus()
}

func roundMs(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
