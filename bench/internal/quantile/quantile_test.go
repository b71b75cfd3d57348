package quantile

import (
	"testing"
	"time"
)

func TestNearest(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 3}, {0.99, 5}, {1, 5}, {0.2, 1}, {0.01, 1}} {
		if got := Nearest(ds, c.p); got != c.want {
			t.Errorf("Nearest(%v, %v) = %v, want %v", ds, c.p, got, c.want)
		}
	}
	if ds[0] != 5 {
		t.Errorf("Nearest sorted its argument: %v", ds)
	}
	if got := Nearest(nil, 0.5); got != 0 {
		t.Errorf("Nearest(nil) = %v", got)
	}
}
