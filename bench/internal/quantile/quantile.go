// Package quantile holds the percentile that the benchmark commands report, so that their p50s agree.
package quantile

import (
	"math"
	"slices"
	"time"
)

// Nearest returns the nearest-rank p-quantile of ds (0 < p ≤ 1), or 0 for none; ds is left as it was.
func Nearest(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
