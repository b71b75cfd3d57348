package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/distrlock/distrlock"
)

func (a *app) cmdPrune(ctx context.Context, args []string) int {
	fs, cf := a.newFlagSet("prune", "prune --free-for D [--batch N] [--json]",
		"Deletes the rows of locks that have been free for at least D (and that no waiter is queued for), in\n"+
			"batches of N rows, each its own transaction. A pruned key acquired again gets a fence larger than\n"+
			"any it had before. Ctrl-C stops it after the current batch.")
	freeFor := newDurationFlag(fs, "free-for", 0, "delete locks free for at least `D` (e.g. 24h); required")
	batch := fs.Int("batch", distrlock.DefaultPruneBatchSize, "delete at most `N` rows per batch")
	rest, code, ok := a.parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return a.failf(exitUsage, "prune takes no arguments")
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "free-for" })
	if !given || *freeFor < 0 {
		return a.failf(exitUsage, "prune needs --free-for D, how long a lock must have been free (e.g. --free-for 24h)")
	}
	if *batch < 1 || *batch > distrlock.MaxPruneBatchSize {
		return a.failf(exitUsage, "prune: --batch %d: need 1 to %d", *batch, distrlock.MaxPruneBatchSize)
	}
	c, code, ok := a.open(ctx, cf, false)
	if !ok {
		return code
	}
	defer c.Close()
	start := time.Now()
	deleted, err := c.m.Prune(ctx, c.db, *freeFor, distrlock.WithPruneBatchSize(*batch))
	took := time.Since(start)
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return a.failf(exitInternal, "prune interrupted after deleting %d rows", deleted)
	case err != nil:
		if deleted > 0 {
			a.warnf("deleted %d rows before the error", deleted)
		}
		return a.explain(c, err)
	}
	if cf.json {
		return a.printJSON(map[string]any{"deleted": deleted, "free_for_ms": millis(*freeFor),
			"batch_size": *batch, "took_ms": millis(took)})
	}
	fmt.Fprintf(a.stdout, "deleted %d locks free for at least %s (in batches of %d, %s)\n",
		deleted, *freeFor, *batch, took.Round(time.Millisecond))
	return exitOK
}
