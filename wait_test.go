package distrlock

import "testing"

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
