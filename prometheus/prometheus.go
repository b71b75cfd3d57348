// Package prometheus exports distrlock's events as Prometheus metrics: a [Collector] is both a
// [distrlock.Observer] (pass it to [distrlock.WithObserver]) and a [prometheus.Collector] (register it).
//
// Metrics, each with the label outcome where it has one (see [distrlock.Event.Outcome]) and the label
// lock only with [WithLockLabel]:
//
//	distrlock_acquire_duration_seconds   histogram{outcome}  one acquire statement
//	distrlock_wait_duration_seconds      histogram{outcome}  a wait for a held lock, from its first attempt
//	distrlock_lock_held                  gauge               locks held by this process's managers
//	distrlock_extend_failures_total      counter             failed extends (heartbeat or Extend)
//	distrlock_lease_losses_total         counter             leases lost: the work was cancelled
//	distrlock_releases_total             counter{outcome}    releases
//	distrlock_leader_changes_total       counter             new terms seen by Election.Observe
//
// The held gauge and the loss and extend-failure counters exist at 0 from the start (with a lock label,
// from a label's first acquire), so that an alert on their increase fires on the first loss.
package prometheus

import (
	"context"
	"sync"

	"github.com/distrlock/distrlock"
	"github.com/prometheus/client_golang/prometheus"
)

// Option configures [New].
type Option func(*options)

type options struct {
	lockLabel func(key string) string
	buckets   []float64
}

// WithLockLabel adds the label lock, set to label(key), to every metric. label must map the keys to a
// small set of values (a key's prefix, a job's kind): each value is a time series. Default: no lock label.
func WithLockLabel(label func(key string) string) Option {
	return func(o *options) { o.lockLabel = label }
}

// WithBuckets sets the histograms' buckets, in seconds; default [DefaultBuckets].
func WithBuckets(buckets []float64) Option {
	return func(o *options) { o.buckets = buckets }
}

// DefaultBuckets span a 1 ms acquire to a 1 min wait.
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Collector is a [distrlock.Observer] that keeps the metrics listed in the package's doc and a
// [prometheus.Collector] that exports them. It is safe for concurrent use.
type Collector struct {
	lockLabel func(string) string

	acquire, wait                         *prometheus.HistogramVec
	held                                  *prometheus.GaugeVec
	extendFailures, losses, leaderChanges *prometheus.CounterVec
	releases                              *prometheus.CounterVec

	mu      sync.Mutex
	holding map[string]struct{} // keys held, so that a release after a loss is not counted twice
	labeled map[string]struct{} // lock label values whose zero series exist
}

// New returns a Collector with no samples.
func New(opts ...Option) *Collector {
	o := options{buckets: DefaultBuckets}
	for _, opt := range opts {
		opt(&o)
	}
	var lock []string
	if o.lockLabel != nil {
		lock = []string{"lock"}
	}
	withOutcome := append([]string{"outcome"}, lock...)
	c := &Collector{
		lockLabel: o.lockLabel,
		acquire: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "distrlock_acquire_duration_seconds", Help: "Latency of acquire statements, by outcome.", Buckets: o.buckets,
		}, withOutcome),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "distrlock_wait_duration_seconds", Help: "Time from a wait's first attempt to its end, by outcome.", Buckets: o.buckets,
		}, withOutcome),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "distrlock_lock_held", Help: "Locks held by this process.",
		}, lock),
		extendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distrlock_extend_failures_total", Help: "Extends of a lease that failed.",
		}, lock),
		losses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distrlock_lease_losses_total", Help: "Leases that may have ended while held: the work was cancelled.",
		}, lock),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distrlock_releases_total", Help: "Release statements, by outcome.",
		}, withOutcome),
		leaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "distrlock_leader_changes_total", Help: "New terms or leaderless states seen by an election's observer.",
		}, lock),
		holding: make(map[string]struct{}),
		labeled: make(map[string]struct{}),
	}
	if o.lockLabel == nil {
		c.zeroSeries()
	}
	return c
}

// zeroSeries makes the series that alerts watch for an increase, at 0, for labels.
func (c *Collector) zeroSeries(labels ...string) {
	c.held.WithLabelValues(labels...)
	c.extendFailures.WithLabelValues(labels...)
	c.losses.WithLabelValues(labels...)
}

func (c *Collector) labels(key string, outcome ...string) []string {
	if c.lockLabel != nil {
		return append(outcome, c.lockLabel(key))
	}
	return outcome
}

// ObserveLock updates the metrics for e.
func (c *Collector) ObserveLock(_ context.Context, e distrlock.Event) {
	switch e.Kind {
	case distrlock.EventAcquire:
		if c.lockLabel != nil {
			c.zeroLabel(c.lockLabel(e.Key))
		}
		c.acquire.WithLabelValues(c.labels(e.Key, e.Outcome())...).Observe(e.Duration.Seconds())
		if e.Err == nil {
			c.setHeld(e.Key, true)
		}
	case distrlock.EventWaitEnded:
		c.wait.WithLabelValues(c.labels(e.Key, e.Outcome())...).Observe(e.Duration.Seconds())
	case distrlock.EventExtend:
		if e.Err != nil {
			c.extendFailures.WithLabelValues(c.labels(e.Key)...).Inc()
		}
	case distrlock.EventLeaseLost:
		c.losses.WithLabelValues(c.labels(e.Key)...).Inc()
		c.setHeld(e.Key, false)
	case distrlock.EventRelease:
		c.releases.WithLabelValues(c.labels(e.Key, e.Outcome())...).Inc()
		// A release the database failed may have left the lock held.
		if o := e.Outcome(); o == distrlock.OutcomeOK || o == distrlock.OutcomeNotHeld {
			c.setHeld(e.Key, false)
		}
	case distrlock.EventNewLeader:
		c.leaderChanges.WithLabelValues(c.labels(e.Key)...).Inc()
	}
}

// zeroLabel makes label's zero series the first time it is seen.
func (c *Collector) zeroLabel(label string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.labeled[label]; !ok {
		c.labeled[label] = struct{}{}
		c.zeroSeries(label)
	}
}

// setHeld records that key is held or not, and moves the gauge when that changes.
func (c *Collector) setHeld(key string, held bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, was := c.holding[key]
	switch {
	case held && !was:
		c.holding[key] = struct{}{}
		c.held.WithLabelValues(c.labels(key)...).Inc()
	case !held && was:
		delete(c.holding, key)
		c.held.WithLabelValues(c.labels(key)...).Dec()
	}
}

// Describe sends the descriptions of the metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.collectors() {
		m.Describe(ch)
	}
}

// Collect sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.collectors() {
		m.Collect(ch)
	}
}

func (c *Collector) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.acquire, c.wait, c.held, c.extendFailures, c.losses, c.releases, c.leaderChanges}
}

var (
	_ distrlock.Observer   = (*Collector)(nil)
	_ prometheus.Collector = (*Collector)(nil)
)
