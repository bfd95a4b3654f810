package watch

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults. Consul cannot filter a list on a modify index, so every answer
// is a whole list: the status lists hold only failing checks (cheap), the
// catalog list one entry per service, and the instance list, read only
// when registrations change, every check of the datacenter.
const (
	// DefaultWait is the blocking wait of every loop: Consul's own default
	// (it caps waits at 10 min and adds up to wait/16 of jitter). A wait
	// that ends without a change still returns the list, so an idle
	// datacenter costs three small lists per Wait; a longer wait is
	// cheaper. If a load balancer with an idle timeout sits between gwsync
	// and the public agents, Wait must stay below that timeout.
	DefaultWait = 5 * time.Minute
	// MaxWait is Consul's cap on a blocking wait.
	MaxWait = 10 * time.Minute

	// DefaultRate and DefaultBurst are each loop's token bucket: requests
	// per second, and how many may follow each other at once. After a quiet
	// period the bucket is full, so an isolated change is fetched as soon
	// as Consul wakes the loop; under sustained churn a loop fetches at most
	// Rate lists per second, each carrying every change since the previous
	// one, so a change waits at most 250 ms for its turn (within the 0.5 s
	// end-to-end goal). The status lists' index is the whole check table's:
	// a request sent after any check changed (a passing check's output
	// included, which large clusters update all the time) returns at once,
	// so under such churn the status loops run at Rate; their answers hold
	// only failing checks, so that costs requests, not bytes.
	DefaultRate  = 4.0
	DefaultBurst = 4

	// DefaultListShare bounds the share of time a catalog loop spends
	// reading whole instance lists, the one expensive list (measured at
	// 5,000 services × 10 instances: 32 MiB of JSON, 730 KiB gzip, over a
	// second of the answering agent's time): after a list that took d, the
	// loop waits d·(1/ListShare − 1) before its next request. A lone
	// registration after a quiet period is read at once; while
	// registrations keep changing, the cost follows the catalog's size at
	// most a fifth of the time, and a slow server slows the loop down.
	DefaultListShare = 0.2

	// DefaultBackoffMin and DefaultBackoffMax bound the exponential backoff
	// (full jitter) after a failed request: the first retry comes within
	// 0.5 s, a public cluster that stays down is asked at most every 30 s
	// per loop.
	DefaultBackoffMin = 500 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second

	// DefaultCallTimeout bounds a plain read (a first list, the instance
	// list, the datacenter list) and is the margin a blocking read gets on
	// top of Wait + Wait/16: the instance list of a large datacenter
	// (measured: about a second at 5,000 services), forwarded over the
	// WAN, takes seconds, not tens of seconds.
	DefaultCallTimeout = 10 * time.Second

	// DefaultDCRefresh is how often the federation's datacenter list is
	// read: a datacenter that joins is watched within a minute (its first
	// list is a Resync, so nothing is missed), one that leaves stops being
	// watched.
	DefaultDCRefresh = time.Minute
)

// Options configure a Detector. Zero values take the defaults above.
type Options struct {
	// Wait is the blocking wait of every request (default DefaultWait, at
	// most MaxWait).
	Wait time.Duration
	// Rate is each loop's sustained request rate per second (default
	// DefaultRate); Burst its bucket size (default DefaultBurst).
	Rate  float64
	Burst int
	// ListShare is the largest share of time (0 < ListShare ≤ 1) a catalog
	// loop spends reading whole instance lists (default DefaultListShare).
	ListShare float64
	// BackoffMin and BackoffMax bound the backoff after errors.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// CallTimeout bounds a plain read and is added to a blocking read's
	// Wait + Wait/16.
	CallTimeout time.Duration
	// DCRefresh is how often the datacenter list is read.
	DCRefresh time.Duration
	// OnlyPassing must be the prepared query's only_passing: Usable then
	// counts only instances whose checks all pass; when false it also
	// counts instances with warnings (a query never returns critical ones).
	OnlyPassing bool
	// Logger receives the detector's logs (default: none).
	Logger hclog.Logger
	// Registerer receives the detector's metrics (default: a private
	// registry nobody scrapes).
	Registerer prometheus.Registerer
	// Now is the clock for event and status times (default time.Now).
	Now func() time.Time
}

// withDefaults checks the options and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	check := func(name string, d time.Duration, def time.Duration) time.Duration {
		if d < 0 {
			errs = append(errs, fmt.Errorf("watch options: %s is negative (%s)", name, d))
		}
		if d <= 0 {
			return def
		}
		return d
	}
	o.Wait = check("Wait", o.Wait, DefaultWait)
	o.BackoffMin = check("BackoffMin", o.BackoffMin, DefaultBackoffMin)
	o.BackoffMax = check("BackoffMax", o.BackoffMax, DefaultBackoffMax)
	o.CallTimeout = check("CallTimeout", o.CallTimeout, DefaultCallTimeout)
	o.DCRefresh = check("DCRefresh", o.DCRefresh, DefaultDCRefresh)
	if o.Wait > MaxWait {
		errs = append(errs, fmt.Errorf("watch options: Wait %s is above Consul's cap of %s", o.Wait, MaxWait))
	}
	if o.BackoffMax < o.BackoffMin {
		errs = append(errs, fmt.Errorf("watch options: BackoffMax %s is below BackoffMin %s", o.BackoffMax, o.BackoffMin))
	}
	if o.Rate < 0 || o.Burst < 0 {
		errs = append(errs, fmt.Errorf("watch options: Rate (%g) and Burst (%d) must not be negative", o.Rate, o.Burst))
	}
	if o.ListShare < 0 || o.ListShare > 1 {
		errs = append(errs, fmt.Errorf("watch options: ListShare %g is not within (0, 1]", o.ListShare))
	}
	o.Rate = cmp.Or(o.Rate, DefaultRate)
	o.Burst = cmp.Or(o.Burst, DefaultBurst)
	o.ListShare = cmp.Or(o.ListShare, DefaultListShare)
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, errors.Join(errs...)
}

// requestTimeout is the deadline of one request: a blocking read may be
// held for Wait plus the server's jitter (up to Wait/16), and then needs
// CallTimeout to send the list.
func (o *Options) requestTimeout(blocking bool) time.Duration {
	if !blocking {
		return o.CallTimeout
	}
	return o.Wait + o.Wait/16 + o.CallTimeout
}
