package distrlock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/jackc/pgx/v5/pgconn"
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
	// Tickets order the wake-ups; waiters without one come after, in the order they entered.
	w3, leave3 := r.enter("k", 0)
	w2, leave2 := r.enter("k", 9)
	w1, leave1 := r.enter("k", 7)
	other, leaveOther := r.enter("other", 1)
	if !r.queued("k") || r.queued("none") {
		t.Fatalf("queued: %v for a key with tickets, %v for none", r.queued("k"), r.queued("none"))
	}
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

// TestWaitTurn: a waiter attempts on a free lock when its ticket is next (or was passed over), otherwise
// when each ticket before it has had a grace; one without a ticket lets up to four queued tickets go
// first; while the lock is held it polls at half the hold so far times its place, within the backoff,
// never past the lease; with a listening notifier it sleeps until the lease's end, at most a second, if its
// ticket is queued (else it polls: no release publishes for it).
func TestWaitTurn(t *testing.T) {
	m, err := NewDBManager(DialectPgx, WithWaitBackoff(2*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	l := &DBLock{Key: "job", manager: m}
	grace := m.handoverGrace()
	free := func(freeFor time.Duration, head, tail int64) peekView {
		return peekView{free: true, freeFor: freeFor, head: head, tail: tail}
	}
	for _, c := range []struct {
		name     string
		ticket   int64
		view     peekView
		min, max time.Duration // the sleep's bounds; 0, 0: attempt now
	}{
		{"next ticket", 5, free(0, 4, 7), 0, 0},
		{"passed over", 3, free(0, 4, 7), 0, 0},
		{"second, just freed", 6, free(0, 4, 7), 2 * time.Millisecond, 4 * time.Millisecond},
		{"second, after a grace", 6, free(grace, 4, 7), 0, 0},
		{"third, after a grace", 7, free(grace+time.Millisecond, 4, 7), 3 * time.Millisecond, 6 * time.Millisecond},
		{"no ticket, empty queue", 0, free(0, 7, 7), 0, 0},
		{"no ticket, three queued", 0, free(2*grace, 4, 7), 4 * time.Millisecond, 8 * time.Millisecond},
		{"no ticket, three queued, a grace short by 1 ms", 0, free(3*grace-time.Millisecond, 4, 7), time.Millisecond, time.Millisecond},
		{"no ticket, three queued, after three graces", 0, free(3*grace, 4, 7), 0, 0},
		{"no ticket, nine queued, after four graces", 0, free(4*grace, 0, 9), 0, 0},
		{"held briefly, next", 5, peekView{left: time.Minute, heldFor: time.Millisecond, head: 4, tail: 7}, time.Millisecond, 2 * time.Millisecond},
		{"held 40 ms, next", 5, peekView{left: time.Minute, heldFor: 40 * time.Millisecond, head: 4, tail: 7}, 10 * time.Millisecond, 20 * time.Millisecond},
		{"held 40 ms, third", 7, peekView{left: time.Minute, heldFor: 40 * time.Millisecond, head: 4, tail: 7}, 25 * time.Millisecond, 50 * time.Millisecond},
		{"held long", 5, peekView{left: time.Minute, heldFor: time.Hour, head: 4, tail: 7}, 25 * time.Millisecond, 50 * time.Millisecond},
		{"lease ends soon", 5, peekView{left: 3 * time.Millisecond, heldFor: time.Hour, head: 4, tail: 7}, 3 * time.Millisecond, 3 * time.Millisecond},
	} {
		w := &waitState{lock: l, grace: grace, ticket: c.ticket}
		for range 20 { // the jitter
			got := w.sleepFor(c.view, nil)
			if (c.max == 0 && got > 0) || (c.max > 0 && (got < c.min || got > c.max)) {
				t.Errorf("%s: sleep %v, want %v to %v (0: attempt now)", c.name, got, c.min, c.max)
				break
			}
		}
	}
	w := &waitState{lock: l, grace: grace, ticket: 5}
	held := peekView{left: time.Minute, heldFor: time.Hour, head: 4, tail: 7}
	if got := w.sleepFor(held, &fakeNotifier{}); got != notifierPollCap {
		t.Errorf("held for a minute more, with a listening notifier: sleep %v, want %v", got, notifierPollCap)
	}
	held.left = 200 * time.Millisecond
	if got := w.sleepFor(held, &fakeNotifier{}); got != held.left {
		t.Errorf("held for 200 ms more, with a listening notifier: sleep %v, want the lease's end", got)
	}
	// No release publishes for a waiter whose ticket is not queued (none, or already passed): it polls.
	held.left = time.Minute
	for _, ticket := range []int64{0, 4, 3} {
		w.ticket = ticket
		if got := w.sleepFor(held, &fakeNotifier{}); got > 50*time.Millisecond {
			t.Errorf("ticket %d at head 4, with a listening notifier: sleep %v, want a poll (at most 50 ms)", ticket, got)
		}
	}
}

// TestAcquireWaitEndsOnFailuresThatRepeat: an attempt that fails without changing anything, for a reason
// that would fail the next one too (a pooler's lost prepared statement), ends the wait at once with its
// error, not contention; only transient failures are retried.
func TestAcquireWaitEndsOnFailuresThatRepeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newUnitFixture(t, DialectPgx, "")
		f.expectAcquire(&unitToken{}, time.Minute).fails(&pgconn.PgError{Code: "42P05", Message: "prepared statement exists"})
		start := time.Now()
		err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, time.Minute)
		unitWantErr(t, err, "acquire wait", unitKey, ErrPreparedStatementPooling)
		if errors.Is(err, ErrLockAlreadyAcquired) || errors.Is(err, ErrWaitTimeout) {
			t.Errorf("error %q matches contention or a timeout", err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("returned after %v, want at once", took)
		}
	})
}

// TestAcquireWaitBacksOffFailures: transient failures in a row (a database that refuses connections) are
// retried twice as late each time, up to the backoff's maximum, not every millisecond.
func TestAcquireWaitBacksOffFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newUnitFixture(t, DialectPgx, "")
		dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		for range 12 {
			f.expectAcquire(&unitToken{}, time.Minute).fails(dial)
		}
		tok := &unitToken{}
		f.expectAcquire(tok, time.Minute).granted(3)
		start := time.Now()
		if err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, time.Minute); err != nil {
			t.Fatal(err)
		}
		// Sleeps of half to all of 2, 4, 8, 16, 32 ms and then seven of 50 ms: 206 to 412 ms. Without the
		// doubling, twelve sleeps of 1 to 2 ms.
		if took := time.Since(start); took < 200*time.Millisecond || took > 420*time.Millisecond {
			t.Errorf("took the lock %v after 12 failures, want 206 to 412 ms", took)
		}
		f.wantState(tok.got, 3, time.Minute)
	})
}

// TestAcquireWaitTakesTicketAgain: a waiter whose ticket the queue's head has passed (a caller without a
// ticket took the lock meanwhile) takes a new one, so that it gets its turn again (and a notice with it);
// so does one whose ticket found no row (the key's first acquires all failed, as MySQL's first inserts can
// in a deadlock), rather than wait behind every ticket queued after it.
func TestAcquireWaitTakesTicketAgain(t *testing.T) {
	cases := []struct {
		name       string
		first      int64 // the first ticket; 0: no row
		head, tail int64 // the queue at the read after it
	}{
		{"passed", 7, 7, 7},
		{"no row", 0, 6, 7},
	}
	for _, d := range unitDialects {
		for _, c := range cases {
			t.Run(string(d)+"/"+c.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f := newUnitFixture(t, d, "")
					peek := unitQuery(t, d, "peek", "")
					f.expectAcquire(&unitToken{}, time.Minute).refused()
					f.expectEnqueue(c.first)
					f.mock.ExpectQuery(peek).WithArgs(unitKey).WillReturnRows(unitPeekRows("other", int64(5000), nil, int64(1000), c.head, c.tail))
					f.expectEnqueue(8)
					f.mock.ExpectQuery(peek).WithArgs(unitKey).WillReturnRows(unitPeekRows("other", nil, int64(10), nil, 7, 8))
					tok := &unitToken{}
					f.expectAcquireTicket(tok, time.Minute, 8).granted(9)
					if err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, time.Second); err != nil {
						t.Fatal(err)
					}
					f.wantState(tok.got, 9, time.Minute)
				})
			})
		}
	}
}

// TestAcquireWaitOwnLostAttempt: a key held under the token of this lock's own lost attempt is this
// waiter's to take at once, whatever its place in the queue, instead of polling until that lease ends.
func TestAcquireWaitOwnLostAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newUnitFixture(t, DialectPgx, "")
		f.lock.pending = "lost-attempt"
		f.expectAcquire("lost-attempt", time.Minute).fails(&pgconn.PgError{Code: "40P01", Message: "deadlock detected"})
		f.expectEnqueue(7)
		// As peek.sql reads a held row: how long it has been free is negative, the lease's rest.
		f.mock.ExpectQuery(unitQuery(t, DialectPgx, "peek", "")).WithArgs(unitKey).
			WillReturnRows(unitPeekRows("lost-attempt", int64(59e6), int64(-59e6), int64(1e6), 5, 7))
		f.expectAcquireTicket("lost-attempt", time.Minute, 7).granted(9)
		start := time.Now()
		if err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, time.Minute); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 5*time.Millisecond {
			t.Errorf("took its own lock after %v, want one backoff at most", took)
		}
		f.wantState("lost-attempt", 9, time.Minute)
	})
}

// TestAcquireWaitKeepsReadError: a wait that runs out after a read failed transiently reports contention,
// the timeout and the read's error, which stays matchable.
func TestAcquireWaitKeepsReadError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newUnitFixture(t, DialectPgx, "")
		pgErr := &pgconn.PgError{Code: "55P03", Message: "lock timeout"}
		f.expectAcquire(&unitToken{}, time.Minute).refused()
		f.expectEnqueue(7)
		f.mock.ExpectQuery(unitQuery(t, DialectPgx, "peek", "")).WithArgs(unitKey).WillReturnError(pgErr).WillDelayFor(60 * time.Millisecond)
		f.mock.ExpectExec(unitQuery(t, DialectPgx, "dequeue", "")).WithArgs(unitKey, 7).WillReturnResult(sqlmock.NewResult(0, 1))
		err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, 50*time.Millisecond)
		unitWantErr(t, err, "acquire wait", unitKey, ErrLockAlreadyAcquired, ErrWaitTimeout, pgErr)
		if strings.Contains(err.Error(), "%!") {
			t.Errorf("error text %q", err)
		}
	})
}

// TestAcquireWaitNoTicketAfterTimeout: a wait whose time ran out during its first, refused attempt takes
// no ticket (and so has none to give back): one statement in all.
func TestAcquireWaitNoTicketAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newUnitFixture(t, DialectPgx, "")
		f.expectAcquire(&unitToken{}, time.Minute).q.WillDelayFor(10 * time.Millisecond).WillReturnRows(sqlmock.NewRows([]string{"fence"}))
		rec := &unitRecorder{exec: f.db}
		err := f.lock.AcquireWait(context.Background(), rec, time.Minute, 5*time.Millisecond)
		unitWantErr(t, err, "acquire wait", unitKey, ErrLockAlreadyAcquired, ErrWaitTimeout)
		if len(rec.calls) != 1 {
			t.Errorf("%d statements, want the attempt alone", len(rec.calls))
		}
	})
}

// TestAcquireWaitBackoffResets: the backoff after failures starts again once an attempt is refused (the
// database answers again), so that a wait that found the holder reads at its usual pace.
func TestAcquireWaitBackoffResets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newUnitFixture(t, DialectPgx, "")
		dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		for range 3 {
			f.expectAcquire(&unitToken{}, time.Minute).fails(dial)
		}
		f.expectAcquire(&unitToken{}, time.Minute).refused()
		f.expectEnqueue(7)
		peek := unitQuery(t, DialectPgx, "peek", "")
		f.mock.ExpectQuery(peek).WithArgs(unitKey).WillReturnError(dial)
		f.mock.ExpectQuery(peek).WithArgs(unitKey).WillReturnRows(unitPeekRows("other", nil, int64(10), nil, 6, 7))
		f.expectAcquireTicket(&unitToken{}, time.Minute, 7).granted(4)
		start := time.Now()
		if err := f.lock.AcquireWait(context.Background(), f.db, time.Minute, time.Minute); err != nil {
			t.Fatal(err)
		}
		// Sleeps of 1–2, 2–4 and 4–8 ms after the failures, then 1–2 ms after the refusal and after the
		// failed read: 9 to 18 ms. Without the reset the last two would be 4–8 and 8–16 ms.
		if took := time.Since(start); took < 9*time.Millisecond || took > 18*time.Millisecond {
			t.Errorf("took the lock after %v, want 9 to 18 ms", took)
		}
	})
}

// TestAcquireWaitStepsAside: a wait that follows its manager's release of a lock queued waiters of other
// processes were freed for lets them take it first: it sleeps the minimum backoff, then queues without an
// attempt; after a release that freed it for nobody it attempts at once, and so do one whose maxWait ends
// before the moment does, one with a static token (WithToken), which takes back the lock it released, and
// one whose manager's notifier does not listen (no notice went out). Cancelling its context ends the pause.
func TestAcquireWaitStepsAside(t *testing.T) {
	cases := []struct {
		name    string
		queued  bool          // the release freed the lock for queued tickets
		maxWait time.Duration // of the wait after it
		static  string        // the wait's token, if static
		deaf    bool          // the notifier does not listen
		cancel  bool          // the wait's context is cancelled after 1 ms
	}{
		{"after a release to queued tickets", true, time.Minute, "", false, false},
		{"after a release to nobody", false, time.Minute, "", false, false},
		{"maxWait shorter than the moment", true, time.Millisecond, "", false, false},
		{"maxWait as long as the moment", true, 4 * time.Millisecond, "", false, false},
		{"static token", true, time.Minute, unitHeldToken, false, false},
		{"notifier not listening", true, time.Minute, "", true, false},
		{"cancelled", true, time.Minute, "", false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := &fakeNotifier{deaf: c.deaf}
				f := newUnitFixtureWith(t, DialectPgx, "", WithNotifier(n), WithWaitBackoff(4*time.Millisecond, 50*time.Millisecond))
				f.hold()
				f.mock.ExpectQuery(f.m.q.releaseNotify).WithArgs(unitKey, unitHeldToken, int64(0), true, n.Channel(), false).
					WillReturnRows(sqlmock.NewRows([]string{"notified", "queued"}).AddRow(nil, c.queued))
				if err := f.lock.Release(context.Background(), f.db); err != nil {
					t.Fatal(err)
				}
				next, err := f.m.NewLock(context.Background(), f.db, unitKey)
				if err != nil {
					t.Fatal(err)
				}
				var lo, hi time.Duration // when the wait must end
				switch {
				case c.cancel:
					lo, hi = time.Millisecond, time.Millisecond
				case c.static != "":
					f.expectAcquire(c.static, time.Minute).granted(4)
				case c.queued && !c.deaf && c.maxWait > 4*time.Millisecond:
					// 4 ms aside, the ticket, 2 to 4 ms before the read, the attempt.
					f.expectEnqueue(7)
					f.mock.ExpectQuery(unitQuery(t, DialectPgx, "peek", "")).WithArgs(unitKey).
						WillReturnRows(unitPeekRows("", nil, int64(10), nil, 6, 7))
					f.expectAcquireTicket(&unitToken{}, time.Minute, 7).granted(5)
					lo, hi = 6*time.Millisecond, 8*time.Millisecond
				default:
					f.expectAcquire(&unitToken{}, time.Minute).granted(4)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if c.cancel {
					time.AfterFunc(time.Millisecond, cancel)
				}
				start := time.Now()
				_, err = next.acquireWait(ctx, f.db, "acquire wait", c.static, time.Minute, c.maxWait)
				took := time.Since(start)
				if c.cancel {
					if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLockAlreadyAcquired) {
						t.Errorf("cancelled wait = %v, want context.Canceled and ErrLockAlreadyAcquired", err)
					}
				} else if err != nil {
					t.Fatal(err)
				}
				if took < lo || took > hi {
					t.Errorf("the wait ended after %v, want %v to %v", took, lo, hi)
				}
				if err := f.mock.ExpectationsWereMet(); err != nil {
					t.Error(err)
				}
			})
		})
	}
}

// TestWaitRoomHandOverSweeps: the hand-overs a manager records expire at their instant, and recording
// them keeps the map to those of the last moment.
func TestWaitRoomHandOverSweeps(t *testing.T) {
	var r waitRoom
	now := time.Now()
	r.handOver("a", now.Add(time.Hour))
	if d := r.stepAside("a", now); d != time.Hour {
		t.Errorf("stepAside before the instant = %v, want 1h", d)
	}
	if d := r.stepAside("a", now.Add(2*time.Hour)); d != 0 {
		t.Errorf("stepAside after the instant = %v, want 0", d)
	}
	if d := r.stepAside("b", now); d != 0 {
		t.Errorf("stepAside of a key never handed over = %v, want 0", d)
	}
	for i := range 1000 {
		r.handOver(strconv.Itoa(i), now.Add(-time.Second)) // each expired when the next is recorded
	}
	if len(r.handed) > 32 {
		t.Errorf("after 1000 expired hand-overs the room keeps %d, want at most 32", len(r.handed))
	}
}

// TestEnqueueRetriesSpacedOut: a wait whose ticket keeps failing tries again at the next refusal, then 2,
// 4, 8, … refusals later, and never gives up; a ticket taken ends the spacing.
func TestEnqueueRetriesSpacedOut(t *testing.T) {
	f := newUnitFixture(t, DialectMariaDB, "")
	w := waitState{lock: &f.lock, exec: f.db}
	var sent []int
	for refusal := range 20 {
		if w.ticket != 0 || !w.enqueueDue() {
			continue
		}
		sent = append(sent, refusal)
		if refusal < 15 {
			f.mock.ExpectExec(f.query("enqueue")).WithArgs(unitKey).WillReturnError(errors.New("boom"))
		} else {
			f.expectEnqueue(7)
		}
		w.enqueue(context.Background())
	}
	if fmt.Sprint(sent) != "[0 1 3 7 15]" || w.ticket != 7 || !w.enqueueDue() {
		t.Errorf("tickets sent at refusals %v, ticket %d; want [0 1 3 7 15], ticket 7 and no spacing after it", sent, w.ticket)
	}
	if err := f.mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}
