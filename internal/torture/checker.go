package torture

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

// Report is what a run did and what the checker found. The last four counts must be 0.
type Report struct {
	Acquisitions int            // holds that did at least one step of work
	Steps        int            // steps of work recorded
	Faults       map[string]int // faults injected, by kind
	Refused      int            // steps whose write the resource refused (a stale fence, correctly refused)
	// SharedHolds counts holds that lasted an extend interval while another holder of the same worker
	// process held another key: their heartbeats went through one batcher, and shared statements.
	SharedHolds int

	Overlaps      int // pairs of holds of one key whose steps interleave in time
	Regressions   int // holds of a key whose fence is not larger than the previous hold's
	StaleAccepted int // writes the resource accepted while the lock table already held a newer fence
	Stranded      int // keys no one could take after every lease had ended
	Examples      []string

	sharedAfter int64 // µs: a hold at least this long that overlaps another of its process counts in SharedHolds
}

// Violations is the number of things that must never happen.
func (r Report) Violations() int { return r.Overlaps + r.Regressions + r.StaleAccepted + r.Stranded }

func (r Report) String() string {
	return fmt.Sprintf("acquisitions %d (%d overlapping another key's hold of their process for an extend interval), "+
		"steps %d, faults %v, refused stale writes %d; overlaps %d, fence regressions %d, "+
		"stale writes accepted %d, stranded locks %d", r.Acquisitions, r.SharedHolds, r.Steps, r.Faults, r.Refused,
		r.Overlaps, r.Regressions, r.StaleAccepted, r.Stranded)
}

// hold is one holder's tenure of a key, as the witness saw it.
type hold struct {
	key, worker, id string
	fence           int64
	first, last     int64 // µs on the database's clock
}

type event struct {
	key, worker, id string
	fence, ts       int64
	accepted        bool
	lockFence       int64 // the lock table's fence for the key when the step was recorded
}

// Check reads the witness and counts overlaps, fence regressions and stale writes accepted into r.
func (w *Witness) Check(ctx context.Context, db *sql.DB, r *Report) error {
	rows, err := db.QueryContext(ctx, "SELECT lock_key, worker, fence, ts_us, accepted, hold_id, lock_fence FROM "+w.events+
		" ORDER BY lock_key, ts_us")
	if err != nil {
		return err
	}
	defer rows.Close()
	var events []event
	for rows.Next() {
		var e event
		var acc int
		if err := rows.Scan(&e.key, &e.worker, &e.fence, &e.ts, &acc, &e.id, &e.lockFence); err != nil {
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
			h = &hold{key: e.key, worker: e.worker, id: e.id, fence: e.fence, first: e.ts}
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
		for _, cur := range hs[1:] {
			if cur.first <= latest.last {
				r.Overlaps++
				r.example("overlap: key %s, %s (fence %d) stepped at %d while %s (fence %d) stepped until %d",
					cur.key, cur.worker, cur.fence, cur.first, latest.worker, latest.fence, latest.last)
			}
			if cur.last > latest.last {
				latest = cur
			}
		}
	}
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
		p := h.worker
		if i := strings.LastIndexByte(p, 'h'); i > 0 {
			p = p[:i]
		}
		byProcess[p] = append(byProcess[p], h)
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
