package main

import (
	"cmp"
	"slices"
	"time"

	"github.com/distrlock/distrlock/bench/internal/quantile"
)

// contentionStats is what the parent computes from the acquisitions of one mode's workers.
type contentionStats struct {
	acquisitions int
	perSec       float64 // acquisitions per second from the first wait to the last release
	// handedOver of transitions (acquisitions after the first) went to another process than the last holder.
	handedOver, transitions   int
	waitP50, waitP99, waitMax time.Duration
	// gapP50 and gapP99: from the previous holder's release (when it was sent) to the next holder's
	// acquisition, over hand-overs to another process only.
	gapP50, gapP99 time.Duration
	// releaseP50 is the p50 of the previous holder's release statement (sent to returned) and afterP50 of
	// the time from its return to the next holder's acquisition, over the same hand-overs: where a gap goes.
	releaseP50, afterP50 time.Duration
	// overlaps counts acquisitions that began before an earlier one ended: two holders at once.
	overlaps int
	// fenceRegressions counts acquisitions whose fence is not larger than the previous holder's.
	fenceRegressions int
	fenced           bool // the lock hands out fences
	// commitP50 is the p50 of the durable floor's fence UPDATE alone (0 for other modes).
	commitP50 time.Duration
}

// analyze orders acquisitions by the time they were acquired and computes the figures of one mode.
// Each acquisition's interval runs from Acquired (after the acquire returned) to ReleaseStart (before the
// release was sent), which lies inside the time the server held the lock for it; so two intervals that
// intersect are two holders at once, on the one clock of the host.
func analyze(acqs []acquisition, fenced bool) contentionStats {
	s := contentionStats{acquisitions: len(acqs), fenced: fenced}
	if len(acqs) == 0 {
		return s
	}
	acqs = slices.Clone(acqs)
	slices.SortFunc(acqs, func(a, b acquisition) int { return cmp.Compare(a.Acquired, b.Acquired) })
	waits := make([]time.Duration, 0, len(acqs))
	var gaps, releases, afters, commits []time.Duration
	first, last := acqs[0].WaitStart, acqs[0].Released
	var heldUntil int64 // the latest ReleaseStart so far
	for i, a := range acqs {
		waits = append(waits, time.Duration(a.Acquired-a.WaitStart))
		if a.Commit > 0 {
			commits = append(commits, time.Duration(a.Commit))
		}
		first, last = min(first, a.WaitStart), max(last, a.Released)
		if i > 0 {
			prev := acqs[i-1]
			s.transitions++
			if a.Acquired < heldUntil {
				s.overlaps++
			}
			if prev.Worker != a.Worker {
				s.handedOver++
				gaps = append(gaps, time.Duration(a.Acquired-prev.ReleaseStart))
				releases = append(releases, time.Duration(prev.Released-prev.ReleaseStart))
				afters = append(afters, time.Duration(a.Acquired-prev.Released))
			}
			if fenced && a.Fence <= prev.Fence {
				s.fenceRegressions++
			}
		}
		heldUntil = max(heldUntil, a.ReleaseStart)
	}
	if span := time.Duration(last - first); span > 0 {
		s.perSec = float64(len(acqs)) / span.Seconds()
	}
	s.waitP50, s.waitP99, s.waitMax = quantile.Nearest(waits, 0.50), quantile.Nearest(waits, 0.99), slices.Max(waits)
	s.gapP50, s.gapP99 = quantile.Nearest(gaps, 0.50), quantile.Nearest(gaps, 0.99)
	s.releaseP50, s.afterP50 = quantile.Nearest(releases, 0.50), quantile.Nearest(afters, 0.50)
	s.commitP50 = quantile.Nearest(commits, 0.50)
	return s
}
