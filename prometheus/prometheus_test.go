package prometheus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
	"github.com/distrlock/distrlock/internal/observetest"
	distrlockprom "github.com/distrlock/distrlock/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCollectorEvents: a scripted list of events, with fixed durations, gives exactly these series; the
// lock label is the key's prefix, a label's loss and extend-failure counters exist at 0 from its first
// acquire, and a release after a loss does not take the gauge below zero.
func TestCollectorEvents(t *testing.T) {
	prefix := func(key string) string { return strings.SplitN(key, ":", 2)[0] }
	c := distrlockprom.New(distrlockprom.WithLockLabel(prefix), distrlockprom.WithBuckets([]float64{0.01, 0.1, 1}))
	ctx := context.Background()
	held := fmt.Errorf("distrlock: acquire %q: %w", "job:1", distrlock.ErrLockAlreadyAcquired)
	for _, e := range []distrlock.Event{
		{Kind: distrlock.EventAcquire, Key: "job:1", Fence: 1, Duration: 7812500 * time.Nanosecond}, // 1/128 s
		{Kind: distrlock.EventAcquire, Key: "job:1", Err: held, Duration: 3 * time.Millisecond},
		{Kind: distrlock.EventWaitStarted, Key: "job:1", Attempts: 1},
		{Kind: distrlock.EventRelease, Key: "job:1", Fence: 1, Duration: time.Millisecond},
		{Kind: distrlock.EventAcquire, Key: "job:1", Fence: 2, Duration: 62500 * time.Microsecond}, // 1/16 s
		{Kind: distrlock.EventWaitEnded, Key: "job:1", Fence: 2, Attempts: 2, Duration: 500 * time.Millisecond},
		{Kind: distrlock.EventExtend, Key: "job:1", Fence: 2, Err: fmt.Errorf("x: %w", distrlock.ErrLockAlreadyReleased)},
		{Kind: distrlock.EventLeaseLost, Key: "job:1", Fence: 2, Err: distrlock.ErrLockLost},
		{Kind: distrlock.EventRelease, Key: "job:1", Fence: 2, Err: distrlock.ErrLockAlreadyReleased},
		{Kind: distrlock.EventAcquire, Key: "leader:x", Fence: 9, Duration: 2 * time.Second},
		{Kind: distrlock.EventNewLeader, Key: "leader:x", Fence: 9},
	} {
		c.ObserveLock(ctx, e)
	}
	want := `
# HELP distrlock_acquire_duration_seconds Latency of acquire statements, by outcome.
# TYPE distrlock_acquire_duration_seconds histogram
distrlock_acquire_duration_seconds_bucket{lock="job",outcome="contended",le="0.01"} 1
distrlock_acquire_duration_seconds_bucket{lock="job",outcome="contended",le="0.1"} 1
distrlock_acquire_duration_seconds_bucket{lock="job",outcome="contended",le="1"} 1
distrlock_acquire_duration_seconds_bucket{lock="job",outcome="contended",le="+Inf"} 1
distrlock_acquire_duration_seconds_sum{lock="job",outcome="contended"} 0.003
distrlock_acquire_duration_seconds_count{lock="job",outcome="contended"} 1
distrlock_acquire_duration_seconds_bucket{lock="job",outcome="ok",le="0.01"} 1
distrlock_acquire_duration_seconds_bucket{lock="job",outcome="ok",le="0.1"} 2
distrlock_acquire_duration_seconds_bucket{lock="job",outcome="ok",le="1"} 2
distrlock_acquire_duration_seconds_bucket{lock="job",outcome="ok",le="+Inf"} 2
distrlock_acquire_duration_seconds_sum{lock="job",outcome="ok"} 0.0703125
distrlock_acquire_duration_seconds_count{lock="job",outcome="ok"} 2
distrlock_acquire_duration_seconds_bucket{lock="leader",outcome="ok",le="0.01"} 0
distrlock_acquire_duration_seconds_bucket{lock="leader",outcome="ok",le="0.1"} 0
distrlock_acquire_duration_seconds_bucket{lock="leader",outcome="ok",le="1"} 0
distrlock_acquire_duration_seconds_bucket{lock="leader",outcome="ok",le="+Inf"} 1
distrlock_acquire_duration_seconds_sum{lock="leader",outcome="ok"} 2
distrlock_acquire_duration_seconds_count{lock="leader",outcome="ok"} 1
# HELP distrlock_extend_failures_total Extends of a lease that failed.
# TYPE distrlock_extend_failures_total counter
distrlock_extend_failures_total{lock="job"} 1
distrlock_extend_failures_total{lock="leader"} 0
# HELP distrlock_lock_held Locks held by this process.
# TYPE distrlock_lock_held gauge
distrlock_lock_held{lock="job"} 0
distrlock_lock_held{lock="leader"} 1
# HELP distrlock_leader_changes_total New terms or leaderless states seen by an election's observer.
# TYPE distrlock_leader_changes_total counter
distrlock_leader_changes_total{lock="leader"} 1
# HELP distrlock_lease_losses_total Leases that may have ended while held: the work was cancelled.
# TYPE distrlock_lease_losses_total counter
distrlock_lease_losses_total{lock="job"} 1
distrlock_lease_losses_total{lock="leader"} 0
# HELP distrlock_releases_total Release statements, by outcome.
# TYPE distrlock_releases_total counter
distrlock_releases_total{lock="job",outcome="not_held"} 1
distrlock_releases_total{lock="job",outcome="ok"} 1
# HELP distrlock_wait_duration_seconds Time from a wait's first attempt to its end, by outcome.
# TYPE distrlock_wait_duration_seconds histogram
distrlock_wait_duration_seconds_bucket{lock="job",outcome="ok",le="0.01"} 0
distrlock_wait_duration_seconds_bucket{lock="job",outcome="ok",le="0.1"} 0
distrlock_wait_duration_seconds_bucket{lock="job",outcome="ok",le="1"} 1
distrlock_wait_duration_seconds_bucket{lock="job",outcome="ok",le="+Inf"} 1
distrlock_wait_duration_seconds_sum{lock="job",outcome="ok"} 0.5
distrlock_wait_duration_seconds_count{lock="job",outcome="ok"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestCollectorSQLite: a scripted run on SQLite (an acquire, a refused acquire, a wait that gets the lock
// when it is released, a lease lost because its row was released behind its back) gives exactly these
// counters and gauge, and these numbers of acquire and wait samples.
func TestCollectorSQLite(t *testing.T) {
	c := distrlockprom.New()
	observetest.Run(t, c)
	// Held: w's lock on k. Released: a's, the one behind the lease's back, and the lost lease's (not held).
	want := `
# HELP distrlock_extend_failures_total Extends of a lease that failed.
# TYPE distrlock_extend_failures_total counter
distrlock_extend_failures_total 1
# HELP distrlock_lock_held Locks held by this process.
# TYPE distrlock_lock_held gauge
distrlock_lock_held 1
# HELP distrlock_lease_losses_total Leases that may have ended while held: the work was cancelled.
# TYPE distrlock_lease_losses_total counter
distrlock_lease_losses_total 1
# HELP distrlock_releases_total Release statements, by outcome.
# TYPE distrlock_releases_total counter
distrlock_releases_total{outcome="not_held"} 1
distrlock_releases_total{outcome="ok"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"distrlock_extend_failures_total", "distrlock_lock_held", "distrlock_lease_losses_total", "distrlock_releases_total"); err != nil {
		t.Fatal(err)
	}
	counts := sampleCounts(t, c)
	if counts[`distrlock_acquire_duration_seconds{outcome="ok"}`] != 3 ||
		counts[`distrlock_acquire_duration_seconds{outcome="contended"}`] < 2 ||
		counts[`distrlock_wait_duration_seconds{outcome="ok"}`] != 1 {
		t.Errorf("histogram samples %v; want 3 successful acquires (a, w, the lease), at least 2 refused (b, w's first), 1 wait", counts)
	}
}

// sampleCounts returns each histogram series' sample count, by name{labels}.
func sampleCounts(t *testing.T, c prometheus.Collector) map[string]uint64 {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				counts[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = h.GetSampleCount()
			}
		}
	}
	return counts
}

// TestCollectorZeroSeries: before any event, the series alerts watch for an increase exist at 0, so that
// increase() sees the first loss.
func TestCollectorZeroSeries(t *testing.T) {
	want := `
# HELP distrlock_extend_failures_total Extends of a lease that failed.
# TYPE distrlock_extend_failures_total counter
distrlock_extend_failures_total 0
# HELP distrlock_lock_held Locks held by this process.
# TYPE distrlock_lock_held gauge
distrlock_lock_held 0
# HELP distrlock_lease_losses_total Leases that may have ended while held: the work was cancelled.
# TYPE distrlock_lease_losses_total counter
distrlock_lease_losses_total 0
`
	if err := testutil.CollectAndCompare(distrlockprom.New(), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
