package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"time"
)

// paired prints the ratios of scenario (e) measured operation by operation: one floor cycle (two PK
// UPDATEs), one distrlock acquire+release and one DoExclusively with an empty function, in turn, on the
// same *sql.DB. A slow fsync or a neighbour's burst then falls on all three alike, which whole-second
// rounds cannot promise on a shared machine. Each ratio is total floor time / total distrlock time over a
// block; the table shows the median block and the range.
func paired(ctx context.Context, pg, my string, duration time.Duration) {
	fmt.Println("## Acquire+release and DoExclusively against the floor, operation by operation (e)")
	fmt.Println()
	fmt.Printf("%d blocks of %v; in each, the floor (2 PK UPDATEs), acquire+release and DoExclusively (empty function) take turns, one operation each.\n\n", rounds, duration)
	fmt.Println("| database | floor ms/op | acquire+release ms/op | DoExclusively ms/op | acquire+release / floor (min–max) | DoExclusively / floor (min–max) |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, target := range singleTargets(pg, my) {
		if err := pairedTarget(ctx, target, duration); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", target.name, err)
		}
	}
	fmt.Println()
}

func pairedTarget(ctx context.Context, target singleTarget, duration time.Duration) error {
	db, err := sql.Open(target.driver, target.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	floor, err := floorUpdates(ctx, db, 2, target.postgres)
	if err != nil {
		return err
	}
	defer floor.close()
	lib, err := ours(ctx, db, target.dialect)
	if err != nil {
		return err
	}
	defer lib.close()
	cycle := func(l *locker) error {
		release, err := l.acquire(ctx, "paired")
		if err != nil {
			return err
		}
		return release(ctx)
	}
	do := func(l *locker) error { return l.do(ctx, "paired") }
	steps := []func() error{func() error { return cycle(floor) }, func() error { return cycle(lib) }, func() error { return do(lib) }}
	for range 50 { // warm up connections and statement caches
		for _, s := range steps {
			if err := s(); err != nil {
				return err
			}
		}
	}
	var ratios, doRatios []float64
	var ms [3][]float64
	for range rounds {
		var spent [3]time.Duration
		n := 0
		for end := time.Now().Add(duration); time.Now().Before(end); n++ {
			for i, s := range steps {
				start := time.Now()
				if err := s(); err != nil {
					return err
				}
				spent[i] += time.Since(start)
			}
		}
		ratios = append(ratios, float64(spent[0])/float64(spent[1]))
		doRatios = append(doRatios, float64(spent[0])/float64(spent[2]))
		for i := range spent {
			ms[i] = append(ms[i], float64(spent[i])/float64(n)/1e6)
		}
	}
	fmt.Printf("| %s | %.3f | %.3f | %.3f | %s | %s |\n", target.name, median(ms[0]), median(ms[1]), median(ms[2]),
		ratioCell(ratios), ratioCell(doRatios))
	return nil
}

func ratioCell(r []float64) string {
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", median(r), slices.Min(r), slices.Max(r))
}
