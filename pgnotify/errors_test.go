package pgnotify

import "testing"

func TestErrorTexts(t *testing.T) {
	if got, want := ErrRunning.Error(), "pgnotify: listener already running"; got != want {
		t.Errorf("ErrRunning = %q, want %q", got, want)
	}
}
