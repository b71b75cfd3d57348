package torture

import "testing"

// TestAnalyze: the checker counts each kind of violation in a made-up history, and none in a clean one.
func TestAnalyze(t *testing.T) {
	ev := func(key, worker string, fence, ts int64, accepted bool) event {
		return event{key: key, worker: worker, fence: fence, ts: ts, accepted: accepted, lockFence: fence,
			id: key + "/" + worker + "/" + string(rune('0'+fence))}
	}
	clean := []event{
		ev("a", "w1", 1, 10, true), ev("a", "w1", 1, 20, true),
		ev("a", "w2", 2, 30, true), ev("a", "w2", 2, 40, true),
		ev("b", "w1", 1, 15, true),
	}
	var r Report
	analyze(clean, &r)
	if r.Violations() != 0 || r.Acquisitions != 3 || r.Steps != 5 {
		t.Fatalf("clean history: %v", r)
	}

	broken := []event{
		// key a: w2 starts (30) before w1's last step (35): an overlap.
		ev("a", "w1", 1, 10, true), ev("a", "w2", 2, 30, true), ev("a", "w1", 1, 35, false),
		// key b: the later holder has a smaller fence, and its write was accepted after a larger one.
		ev("b", "w1", 5, 10, true), ev("b", "w2", 4, 20, true),
	}
	r = Report{}
	analyze(broken, &r)
	if r.Overlaps != 1 || r.Regressions != 1 || r.StaleAccepted != 1 || r.Refused != 1 {
		t.Fatalf("broken history: %v, want 1 overlap, 1 regression, 1 stale write accepted, 1 refused", r)
	}

	// An accepted write while the lock table already shows a newer fence (the newer holder has not written yet).
	late := ev("c", "w1", 1, 50, true)
	late.lockFence = 2
	r = Report{}
	analyze([]event{ev("c", "w1", 1, 10, true), late}, &r)
	if r.StaleAccepted != 1 || r.Overlaps != 0 {
		t.Fatalf("write after a newer acquisition: %v, want 1 stale write accepted", r)
	}
}

// TestSharedHolds: a hold counts as shared when it lasts at least the threshold and overlaps a hold of
// another key by another holder of the same process; holders of other processes, short holds and holds
// that do not overlap do not count.
func TestSharedHolds(t *testing.T) {
	h := func(key, worker string, first, last int64) *hold {
		return &hold{key: key, worker: worker, id: key + "/" + worker, first: first, last: last}
	}
	holds := map[string]*hold{}
	for _, x := range []*hold{
		h("a", "w1.0h0", 0, 100),   // overlaps b by w1.0h1: counts
		h("b", "w1.0h1", 50, 200),  // overlaps a: counts
		h("c", "w1.0h1", 300, 310), // too short
		h("c", "w2.0h0", 0, 500),   // another process only (w1's holds are not its own)
		h("d", "w3.0h0", 0, 100),   // alone in its process
		h("e", "w3.0h1", 100, 300), // touches d's end only
	} {
		holds[x.id] = x
	}
	if n := sharedHolds(holds, 100); n != 2 {
		t.Fatalf("sharedHolds = %d, want 2", n)
	}
}
