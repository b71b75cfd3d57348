package torture

import (
	"fmt"
	"testing"
	"time"
)

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

// TestAnalyzeWaitsAndTerms: a hold counts as waited when another hold of its key stepped after it began to
// acquire; MaxWaiting counts the processes whose waits cover one instant; terms and their leaders are the
// holds of ElectionKey, checked for overlaps and regressions like any hold.
func TestAnalyzeWaitsAndTerms(t *testing.T) {
	ev := func(key, worker string, fence, ts, waitFrom int64) event {
		return event{key: key, worker: worker, fence: fence, ts: ts, accepted: true, lockFence: fence,
			waitFrom: waitFrom, id: fmt.Sprintf("%s/%s/%d", key, worker, fence)}
	}
	events := []event{
		ev("a", "w1.0h0", 1, 10, 5), ev("a", "w1.0h0", 1, 40, 5), // took it at once
		ev("a", "w2.0h0", 2, 50, 20), // waited from 20 to 50
		ev("a", "w3.0h1", 3, 60, 30), // waited from 30 to 60
		ev("a", "w1.0h1", 4, 70, 35), // waited from 35 to 70
		ev("a", "w4.0h0", 5, 80, 75), // began after w1.0h1's last step: no wait
		ev(ElectionKey, "w5.0h0", 7, 100, 0), ev(ElectionKey, "w5.0h0", 7, 120, 0),
		ev(ElectionKey, "w5.0h1", 8, 130, 0),
		ev(ElectionKey, "w6.0h0", 9, 140, 0),
	}
	var r Report
	analyze(events, &r)
	if r.Violations() != 0 || r.Waits != 3 || r.MaxWaiting != 3 || r.Terms != 3 || r.Leaders != 2 {
		t.Fatalf("%v: want 3 waits, up to 3 processes waiting, 3 terms by 2 processes", r)
	}

	// Two leaders at once, and a term older than the one before it.
	events = []event{
		ev(ElectionKey, "w5.0h0", 7, 100, 0), ev(ElectionKey, "w5.0h0", 7, 120, 0),
		ev(ElectionKey, "w6.0h0", 8, 110, 0), ev(ElectionKey, "w6.0h0", 8, 125, 0),
		ev(ElectionKey, "w7.0h0", 6, 130, 0),
	}
	r = Report{}
	analyze(events, &r)
	if r.Overlaps != 1 || r.Regressions != 1 {
		t.Fatalf("%v: want 1 overlap, 1 term regression", r)
	}
}

// TestAnalyzePeriod: a periodic job acquired, or first stepping, less than the period after the previous
// job's acquisition is a violation; a job after one whose acquisition is unknown is not checked.
func TestAnalyzePeriod(t *testing.T) {
	ev := func(worker string, fence, ts, acquired int64) event {
		return event{key: PeriodKey, worker: worker, fence: fence, ts: ts, accepted: true, lockFence: fence,
			acquired: acquired, id: fmt.Sprintf("%s/%s/%d", PeriodKey, worker, fence)}
	}
	run := func(events ...event) Report {
		r := Report{period: time.Second.Microseconds()}
		analyze(events, &r)
		return r
	}
	r := run(ev("w1", 1, 1_100_000, 1_000_000), ev("w1", 1, 1_150_000, 1_000_000),
		ev("w2", 2, 2_050_000, 2_000_000), ev("w1", 3, 3_300_000, 3_000_000))
	if r.Violations() != 0 || r.PeriodRuns != 3 || r.MinPeriodGap != time.Second || r.MinPeriodStepGap != 1050*time.Millisecond ||
		r.MaxPeriodLag != 300*time.Millisecond {
		t.Fatalf("clean: %v", r)
	}
	// Acquired 900 ms after the last one.
	if r := run(ev("w1", 1, 1_000_000, 1_000_000), ev("w2", 2, 1_950_000, 1_900_000)); r.PeriodViolations != 1 {
		t.Fatalf("acquisitions too close: %v", r)
	}
	// Its acquisition time unknown (the lock table showed another fence), the first step 700 ms after.
	late := ev("w2", 2, 1_700_000, 0)
	late.lockFence = 3
	if r := run(ev("w1", 1, 1_000_000, 1_000_000), late); r.PeriodViolations != 1 {
		t.Fatalf("first step too soon: %v", r)
	}
	// After a job whose acquisition is unknown: unchecked.
	if r := run(late, ev("w1", 3, 1_800_000, 1_750_000)); r.PeriodViolations != 0 || r.PeriodUnchecked != 1 {
		t.Fatalf("unknown acquisition: %v", r)
	}
}
