package consul

import (
	"fmt"
	"net/http"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/ha"
	"github.com/gwsync/gwsync/syncer/watch"
)

// Setup fills o with the Consul-backed parts the controller needs for cfg:
// the metrics, the public reader, one store per gateway, and (when
// events.enabled) the public change detector. The detector gets a client
// of its own, so its long blocking requests never hold the connections
// that execute queries.
func Setup(cfg *config.Config, o syncer.Options) (syncer.Options, error) {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Metrics == nil {
		o.Metrics = syncer.NewMetrics(o.Registerer)
	}
	log := o.Logger.Named("syncer")
	pub, err := cfg.Public.NewClient(config.ClientOptions{MaxConnsPerHost: cfg.Public.MaxConnsPerHost})
	if err != nil {
		return o, fmt.Errorf("public cluster: %w", err)
	}
	o.Public = NewPublic(pub, cfg.Public, cfg.Query, log, o.Metrics)
	o.Stores = map[string]syncer.Store{}
	for _, g := range cfg.Gateways {
		c, err := g.Dedicated.NewClient(config.ClientOptions{MaxConnsPerHost: cfg.Mirror.ReadConcurrency + cfg.Mirror.TxnConcurrency + 2})
		if err != nil {
			return o, fmt.Errorf("gateway %s dedicated cluster: %w", g.Name, err)
		}
		o.Stores[g.Name] = NewStore(StoreOptions{
			Client: c, Gateway: g.Name, NodePrefix: cfg.Mirror.NodePrefix, KVPrefix: cfg.Mirror.KVPrefix, LocalQuery: g.QueryPrefix,
			Timeout: g.Dedicated.Timeout, ReadConcurrency: cfg.Mirror.ReadConcurrency, TxnConcurrency: cfg.Mirror.TxnConcurrency,
			Logger: log.With("gateway", g.Name), Metrics: o.Metrics,
		})
	}
	if o.Replica != "" {
		leases, err := setupHA(cfg, o)
		if err != nil {
			return o, err
		}
		o.Leases = leases
	}
	if !cfg.Events.Enabled {
		return o, nil
	}
	// What the feed's answers say of each DC goes into the dc_up gauge.
	dcUp := func(dc string, ok bool) {
		v := 0.0
		if ok {
			v = 1
		}
		o.Metrics.PublicDCUp.WithLabelValues(dc).Set(v)
	}
	// Two or three blocking loops per public DC plus the DC list refresh.
	wc, err := cfg.Public.NewClient(config.ClientOptions{MaxConnsPerHost: config.DefaultMaxConnsPerHost,
		WrapTransport: func(next http.RoundTripper) http.RoundTripper {
			return newFeedHealth(watch.NewCountingTransport(next), dcUp)
		}})
	if err != nil {
		return o, fmt.Errorf("public cluster (change feed): %w", err)
	}
	det, err := watch.New(watch.NewConsulSource(wc, cfg.Public.AllowStale), watch.Options{
		Wait: cfg.Events.Wait, Rate: cfg.Events.Rate, Burst: cfg.Events.Burst, CallTimeout: cfg.Public.Timeout,
		BackoffMin: cfg.Retry.MinBackoff, BackoffMax: cfg.Retry.MaxBackoff, OnlyPassing: cfg.Query.OnlyPassing,
		Logger: log, Registerer: o.Registerer,
	})
	if err != nil {
		return o, fmt.Errorf("public change feed: %w", err)
	}
	o.Detector = det
	return o, nil
}

// setupHA builds the coordinator: one client per dedicated cluster of its
// own (its blocking watches on lock keys never hold the store's
// connections).
func setupHA(cfg *config.Config, o syncer.Options) (*ha.Coordinator, error) {
	var gws []ha.Gateway
	for _, g := range cfg.Gateways {
		c, err := g.Dedicated.NewClient(config.ClientOptions{MaxConnsPerHost: 4})
		if err != nil {
			return nil, fmt.Errorf("gateway %s dedicated cluster (locks): %w", g.Name, err)
		}
		gws = append(gws, ha.Gateway{Name: g.Name, SourceDC: g.SourceDatacenter, Client: c})
	}
	coord, err := ha.New(ha.Options{
		Replica: o.Replica, Address: o.AdvertiseAddr, ConfigHash: cfg.Hash(),
		SessionTTL: cfg.HA.SessionTTL, LockDelay: cfg.HA.LockDelay,
		// While nobody writes a gateway its marker ages: a takeover must
		// end before resolvers distrust it.
		MaxTakeover: cfg.Resolver.MaxMarkerAge - cfg.Mirror.MarkerInterval,
		KVPrefix:    cfg.Mirror.KVPrefix, Gateways: gws, Logger: o.Logger, Registerer: o.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("high availability: %w", err)
	}
	return coord, nil
}
