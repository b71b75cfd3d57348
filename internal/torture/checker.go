package torture

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report is what a run did and what the checker found. The counts from Overlaps to PeriodViolations must
// be 0.
type Report struct {
	Acquisitions int            // holds that did at least one step of work, terms and periodic jobs included
	Steps        int            // steps of work recorded
	Faults       map[string]int // faults injected, by kind
	Refused      int            // steps whose write the resource refused (a stale fence, correctly refused)
	// SharedHolds counts holds that lasted an extend interval while another holder of the same worker
	// process held another key: their heartbeats went through one batcher, and shared statements.
	SharedHolds int
	// Waits counts the holds that came through a wait: another holder of the key did a step between
	// the moment this one began to acquire and its own first step. MaxWaiting is the most worker
	// processes seen waiting for one key at once, counting such waits only.
	Waits, MaxWaiting int
	// PushWaits and PushTerms count the waits and the terms of worker processes with a pgnotify Listener
	// (IDs ending in PushSuffix).
	PushWaits, PushTerms int
	Terms                int // election terms that did a step of work
	Leaders              int // worker processes that led at least once
	PeriodRuns           int // periodic jobs run (holds of PeriodKey)
	// MinPeriodGap is the shortest time between two acquisitions of PeriodKey on the database's clock
	// (the lock table's acquired_at, which the witness reads with each step), MinPeriodStepGap the shortest
	// between an acquisition and the next job's first step on the witness's clock (the same server's),
	// MaxPeriodLag the longest from an acquisition to its own first step.
	MinPeriodGap, MinPeriodStepGap, MaxPeriodLag time.Duration
	// PeriodUnchecked counts the jobs whose predecessor's acquisition time is unknown (at its first step
	// the lock table showed another fence), which the period check skips.
	PeriodUnchecked int

	Pruned int64 // rows deleted by the pruner (Config.PruneEvery) during the run

	Overlaps      int // pairs of holds of one key whose steps interleave in time; terms of the election too
	Regressions   int // holds of a key whose fence is not larger than the previous hold's; terms too
	StaleAccepted int // writes the resource accepted while the lock table already held a newer fence
	Stranded      int // keys no one could take after every lease had ended
	// PeriodViolations counts the periodic jobs acquired, or whose first step came, less than the period
	// (the job's WithLockAtLeastFor) after the previous job's acquisition.
	PeriodViolations int
	Examples         []string

	sharedAfter int64 // µs: a hold at least this long that overlaps another of its process counts in SharedHolds
	period      int64 // µs: the least time between two acquisitions of PeriodKey (0: not checked)
}

// Violations is the number of things that must never happen.
func (r Report) Violations() int {
	return r.Overlaps + r.Regressions + r.StaleAccepted + r.Stranded + r.PeriodViolations
}

func (r Report) String() string {
	return fmt.Sprintf("acquisitions %d (%d overlapping another key's hold of their process for an extend interval, "+
		"%d through a wait, up to %d processes waiting for one key, %d of them with push), election terms %d by %d processes (%d with push), "+
		"periodic jobs %d (least %v between acquisitions, %v from one to the next job's first step, lag to the first step up to %v, %d unchecked), "+
		"steps %d, faults %v, refused stale writes %d; overlaps %d, fence regressions %d, "+
		"stale writes accepted %d, stranded locks %d, period violations %d; rows pruned %d", r.Acquisitions, r.SharedHolds,
		r.Waits, r.MaxWaiting, r.PushWaits, r.Terms, r.Leaders, r.PushTerms, r.PeriodRuns, r.MinPeriodGap, r.MinPeriodStepGap, r.MaxPeriodLag, r.PeriodUnchecked,
		r.Steps, r.Faults, r.Refused, r.Overlaps, r.Regressions, r.StaleAccepted, r.Stranded, r.PeriodViolations, r.Pruned)
}

// hold is one holder's tenure of a key, as the witness saw it.
type hold struct {
	key, worker, id string
	fence           int64
	first, last     int64 // µs on the database's clock
	waitFrom        int64 // µs, when the holder began to acquire, if it waited for the lock
	acquired        int64 // µs, the lock table's acquired_at at the first step, if it was this hold's
}

type event struct {
	key, worker, id string
	fence, ts       int64
	accepted        bool
	lockFence       int64 // the lock table's fence for the key when the step was recorded
	acquired        int64 // the lock table's acquired_at then
	waitFrom        int64
}

// Check reads the witness and counts overlaps, fence regressions and stale writes accepted into r.
func (w *Witness) Check(ctx context.Context, db *sql.DB, r *Report) error {
	rows, err := db.QueryContext(ctx, "SELECT lock_key, worker, fence, ts_us, accepted, hold_id, lock_fence, acquired_us, "+
		"wait_from_us FROM "+w.events+" ORDER BY lock_key, ts_us")
	if err != nil {
		return err
	}
	defer rows.Close()
	var events []event
	for rows.Next() {
		var e event
		var acc int
		if err := rows.Scan(&e.key, &e.worker, &e.fence, &e.ts, &acc, &e.id, &e.lockFence, &e.acquired, &e.waitFrom); err != nil {
			return err
		}
		e.accepted = acc == 1
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	analyze(events, r)
	return nil
}

// analyze counts into r what the events, sorted by key and time, show.
func analyze(events []event, r *Report) {
	r.Steps = len(events)

	holds := map[string]*hold{}
	maxAccepted := map[string]int64{}
	for _, e := range events { // in time order per key
		h := holds[e.id]
		if h == nil {
			h = &hold{key: e.key, worker: e.worker, id: e.id, fence: e.fence, first: e.ts, waitFrom: e.waitFrom}
			if e.lockFence == e.fence {
				h.acquired = e.acquired
			}
			holds[e.id] = h
		}
		h.last = e.ts
		if !e.accepted {
			r.Refused++
			continue
		}
		if e.fence < maxAccepted[e.key] || e.lockFence > e.fence {
			r.StaleAccepted++
			r.example("stale write accepted: key %s fence %d (largest written %d, lock table at %d)",
				e.key, e.fence, maxAccepted[e.key], e.lockFence)
		}
		maxAccepted[e.key] = max(maxAccepted[e.key], e.fence)
	}
	byKey := map[string][]*hold{}
	for _, h := range holds {
		byKey[h.key] = append(byKey[h.key], h)
	}
	r.Acquisitions = len(holds)
	r.SharedHolds = sharedHolds(holds, r.sharedAfter)
	leaders := map[string]bool{}
	for _, h := range holds {
		if h.key == ElectionKey {
			r.Terms++
			leaders[process(h.worker)] = true
			if strings.HasSuffix(process(h.worker), PushSuffix) {
				r.PushTerms++
			}
		}
	}
	r.Leaders = len(leaders)
	for _, hs := range byKey {
		sort.Slice(hs, func(i, j int) bool { return hs[i].first < hs[j].first })
		for i := 1; i < len(hs); i++ {
			prev, cur := hs[i-1], hs[i]
			if cur.fence <= prev.fence {
				r.Regressions++
				r.example("fence regression: key %s, %s fence %d after %s fence %d", cur.key, cur.worker, cur.fence, prev.worker, prev.fence)
			}
		}
		// Any two holds of one key whose [first, last] intervals intersect overlapped.
		latest := hs[0]
		var waited []*hold
		for _, cur := range hs[1:] {
			if cur.first <= latest.last {
				r.Overlaps++
				r.example("overlap: key %s, %s (fence %d) stepped at %d while %s (fence %d) stepped until %d",
					cur.key, cur.worker, cur.fence, cur.first, latest.worker, latest.fence, latest.last)
			}
			// An earlier hold stepped after cur began to acquire: the lock was taken then, so cur waited.
			if cur.waitFrom > 0 && latest.last > cur.waitFrom {
				r.Waits++
				if strings.HasSuffix(process(cur.worker), PushSuffix) {
					r.PushWaits++
				}
				waited = append(waited, cur)
			}
			if cur.last > latest.last {
				latest = cur
			}
		}
		r.MaxWaiting = max(r.MaxWaiting, maxWaiting(waited))
		if hs[0].key == PeriodKey {
			r.checkPeriod(hs)
		}
	}
}

// checkPeriod checks the holds of PeriodKey, sorted by their first steps: each was acquired, and did its
// first step, at least r.period after the previous one was acquired. Both use the database's clock: the lock
// table's acquired_at and the witness's stamp. A check of first steps against first steps would need a
// bound on the lag from an acquisition to its first step, which a loaded machine does not give (a second
// has been seen).
func (r *Report) checkPeriod(hs []*hold) {
	r.PeriodRuns = len(hs)
	minGap, minStepGap, maxLag := int64(-1), int64(-1), int64(0)
	for i, cur := range hs {
		if cur.acquired > 0 {
			maxLag = max(maxLag, cur.first-cur.acquired)
		}
		if i == 0 {
			continue
		}
		prev := hs[i-1]
		if prev.acquired == 0 {
			r.PeriodUnchecked++
			continue
		}
		gap, stepGap := cur.acquired-prev.acquired, cur.first-prev.acquired
		if cur.acquired == 0 {
			gap = stepGap // acquired no later than its first step
		}
		if minGap < 0 || gap < minGap {
			minGap = gap
		}
		if minStepGap < 0 || stepGap < minStepGap {
			minStepGap = stepGap
		}
		if r.period > 0 && (gap < r.period || stepGap < r.period) {
			r.PeriodViolations++
			r.example("period: %s (fence %d) acquired %d µs and stepped %d µs after %s (fence %d) acquired, period %d µs",
				cur.worker, cur.fence, gap, stepGap, prev.worker, prev.fence, r.period)
		}
	}
	r.MinPeriodGap = time.Duration(max(minGap, 0)) * time.Microsecond
	r.MinPeriodStepGap = time.Duration(max(minStepGap, 0)) * time.Microsecond
	r.MaxPeriodLag = time.Duration(maxLag) * time.Microsecond
}

// maxWaiting is the most worker processes whose waits, [waitFrom, first), cover one instant.
func maxWaiting(waited []*hold) int {
	most := 0
	for _, at := range waited { // the most is reached where some wait begins
		procs := map[string]bool{}
		for _, h := range waited {
			if h.waitFrom <= at.waitFrom && at.waitFrom < h.first {
				procs[process(h.worker)] = true
			}
		}
		most = max(most, len(procs))
	}
	return most
}

// process is the worker process of a holder's ID ("<process>h<holder>").
func process(worker string) string {
	if i := strings.LastIndexByte(worker, 'h'); i > 0 {
		return worker[:i]
	}
	return worker
}

func (r *Report) example(format string, args ...any) {
	if len(r.Examples) < 5 {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

// sharedHolds counts the holds of at least minLen µs that overlap in time a hold of another key by another
// holder of the same worker process (worker IDs are "<process>h<holder>").
func sharedHolds(holds map[string]*hold, minLen int64) int {
	byProcess := map[string][]*hold{}
	for _, h := range holds {
		byProcess[process(h.worker)] = append(byProcess[process(h.worker)], h)
	}
	n := 0
	for _, hs := range byProcess {
		for _, h := range hs {
			if h.last-h.first < minLen {
				continue
			}
			for _, o := range hs {
				if o.worker != h.worker && o.key != h.key && o.first < h.last && h.first < o.last {
					n++
					break
				}
			}
		}
	}
	return n
}
