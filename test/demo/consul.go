package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/config"
)

// consulStartTimeout bounds a dev agent's start (leader elected, own node
// registered): well under a second warm, more on two busy cores.
const consulStartTimeout = 60 * time.Second

// consul is one single-server Consul cluster (`consul agent -dev`: data in
// memory, so a restart comes back empty) on fixed loopback ports.
type consul struct {
	name, dc string
	bin      string
	ports    []int // http, dns, serf lan, serf wan, server
	api      *api.Client
	proc     *proc
}

func newConsul(bin, name, dc string) (*consul, error) {
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	c := &consul{name: name, dc: dc, bin: bin, ports: ports}
	// Explicit configuration: nothing comes from CONSUL_HTTP_* variables.
	c.api, err = config.Cluster{Address: c.httpAddr(), Scheme: "http", Timeout: 5 * time.Second}.NewClient(config.ClientOptions{})
	return c, err
}

func (c *consul) httpAddr() string { return "127.0.0.1:" + strconv.Itoa(c.ports[0]) }
func (c *consul) wanAddr() string  { return "127.0.0.1:" + strconv.Itoa(c.ports[3]) }
func (c *consul) node() string     { return "consul-" + c.name }

// start runs the agent and waits until it is a leader with its own node in
// the catalog.
func (c *consul) start(ps *procs, done <-chan struct{}) error {
	p := strconv.Itoa
	var err error
	c.proc, err = ps.start("consul-"+c.name, c.bin, "agent", "-dev",
		"-datacenter", c.dc, "-node", c.node(), "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", p(c.ports[0]), "-dns-port", p(c.ports[1]), "-serf-lan-port", p(c.ports[2]),
		"-serf-wan-port", p(c.ports[3]), "-server-port", p(c.ports[4]),
		"-https-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-hcl", "connect { enabled = false }", "-hcl", "ui_config { enabled = false }")
	if err != nil {
		return err
	}
	return poll(done, consulStartTimeout, "consul "+c.name+" ready", func() error {
		if c.proc.exited() {
			return fmt.Errorf("consul exited: %v\n%s", c.proc.err, c.proc.tail(20))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		leader, err := c.api.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
		if err != nil || leader == "" {
			return fmt.Errorf("no leader yet (%v)", err)
		}
		n, _, err := c.api.Catalog().Node(c.node(), (&api.QueryOptions{}).WithContext(ctx))
		if err != nil || n == nil {
			return fmt.Errorf("own node not registered yet (%v)", err)
		}
		return nil
	})
}

// federate WAN-joins every server to the first and waits until each DC
// lists every DC and reaches every other one.
func federate(done <-chan struct{}, servers ...*consul) error {
	for _, s := range servers[1:] {
		if err := s.joinWAN(servers[0].wanAddr()); err != nil {
			return fmt.Errorf("consul %s: join WAN: %w", s.name, err)
		}
	}
	var want []string
	for _, s := range servers {
		want = append(want, s.dc)
	}
	slices.Sort(want)
	return poll(done, consulStartTimeout, "WAN federation", func() error {
		for _, s := range servers {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var dcs []string
			_, err := s.api.Raw().Query("/v1/catalog/datacenters", &dcs, (&api.QueryOptions{}).WithContext(ctx))
			if err == nil {
				slices.Sort(dcs)
				if !slices.Equal(dcs, want) {
					err = fmt.Errorf("%s lists %v, want %v", s.dc, dcs, want)
				}
			}
			for _, other := range want {
				if err == nil && other != s.dc {
					_, _, err = s.api.Catalog().Services((&api.QueryOptions{Datacenter: other}).WithContext(ctx))
				}
			}
			cancel()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// joinWAN asks c to join the WAN pool through addr (the api package's
// Agent().Join takes no context, so the call is made here).
func (c *consul) joinWAN(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+c.httpAddr()+"/v1/agent/join/"+url.PathEscape(addr)+"?wan=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return nil
}

// register writes one external instance with a passing check into the
// catalog, as a service registered in the public Consul would look.
func (c *consul) register(node, id, service string, port int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.api.Catalog().Register(&api.CatalogRegistration{
		Node: node, Address: "127.0.0.1",
		Service: &api.AgentService{ID: id, Service: service, Port: port, Weights: api.AgentWeights{Passing: 1, Warning: 1}},
		Check: &api.AgentCheck{Node: node, CheckID: "service:" + id, Name: "backend " + id, Status: api.HealthPassing,
			ServiceID: id, ServiceName: service},
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("register %s in %s: %w", id, c.dc, err)
	}
	return nil
}
