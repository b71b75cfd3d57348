package distrlock

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestWaitRoomWakesOneInTurn: a release wakes the longest-waiting waiter of the key only; one that gives up
// after its wake without trying passes the wake on, one that tries does not; other keys are not woken.
func TestWaitRoomWakesOneInTurn(t *testing.T) {
	var r waitRoom
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	w1, leave1 := r.enter("k")
	w2, leave2 := r.enter("k")
	w3, leave3 := r.enter("k")
	other, leaveOther := r.enter("other")
	defer leaveOther(false)

	r.wake("k")
	if !closed(w1) || closed(w2) || closed(w3) || closed(other) {
		t.Fatalf("first wake: woken %v %v %v (other key %v), want only the first", closed(w1), closed(w2), closed(w3), closed(other))
	}
	leave1(false) // gives up without trying: the wake goes on
	if !closed(w2) || closed(w3) {
		t.Fatalf("after the first gave up: woken %v %v, want the second only", closed(w2), closed(w3))
	}
	leave2(true) // tried: nothing more
	if closed(w3) {
		t.Fatal("the third was woken although the second tried")
	}
	r.wake("k")
	if !closed(w3) {
		t.Fatal("the third was not woken by the next release")
	}
	leave3(true)
	if len(r.keys) != 1 {
		t.Fatalf("keys left: %v, want only the other key's waiter", r.keys)
	}
	r.wake("k") // nobody waits: nothing happens
}

// TestAcquireWaitReadsBetweenAttempts: after one refused attempt, a waiter reads the key (no row lock, no
// write) until the lock looks free, sleeping no longer than the holder's lease has left, and only then
// sends the acquire again; a key held under the token of its own lost attempt looks free.
func TestAcquireWaitReadsBetweenAttempts(t *testing.T) {
	for _, d := range unitDialects {
		t.Run(string(d), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newUnitFixture(t, d, "")
				f.lock.manager.backoffMin, f.lock.manager.backoffMax = 40*time.Millisecond, 40*time.Millisecond
				peek := unitQuery(t, d, "peek", "")
				f.expectAcquire(&unitToken{}, time.Minute).refused()
				f.expectEnqueue(7)
				f.mock.ExpectQuery(peek).WithArgs(unitKey).WillReturnRows(unitPeekRows("holder", int64(5000), nil, int64(1000), 6, 7)) // 5 ms left
				f.mock.ExpectQuery(peek).WithArgs(unitKey).WillReturnRows(unitPeekRows("holder", nil, int64(10), nil, 6, 7))           // released
				tok := &unitToken{}
				f.expectAcquireTicket(tok, time.Minute, 7).granted(9)
				start := time.Now()
				if err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, time.Second); err != nil {
					t.Fatal(err)
				}
				// 20 to 40 ms after the refusal and the ticket, then 5 ms, the lease's rest, instead of another
				// 20 to 40; then at once, the next ticket's turn.
				if took := time.Since(start); took < 25*time.Millisecond || took > 45*time.Millisecond {
					t.Errorf("took the lock after %v, want 25 to 45 ms", took)
				}
				f.wantState(tok.got, 9, time.Minute)
			})
		})
		t.Run(string(d)+"/own lost attempt", func(t *testing.T) {
			f := newUnitFixture(t, d, "")
			f.lock.pending = "lost-attempt"
			f.mock.ExpectQuery(unitQuery(t, d, "peek", "")).WithArgs(unitKey).
				WillReturnRows(unitPeekRows("lost-attempt", int64(60e6), nil, int64(1), 0, 0))
			if v, err := f.lock.peek(context.Background(), f.db); err != nil || !v.free {
				t.Fatalf("peek of a key held by the lost attempt's token = %v, %v; want free", v.free, err)
			}
		})
	}
}
