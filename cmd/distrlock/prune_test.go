package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// TestPrune: `distrlock prune` deletes the locks free for at least --free-for, in batches of --batch,
// reports how many as text or JSON, hides the fence floor from list, and a pruned key's next holder gets a
// larger fence; missing or bad flags are usage errors (64).
func TestPrune(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			c := newCLI(t, b)
			fence := func(key string) int64 {
				res := c.run("run", "--key", key, "--", "sh", "-c", "echo $DISTRLOCK_FENCE")
				if res.code != 0 {
					t.Fatalf("run %s: %d %s", key, res.code, res.stderr)
				}
				n, err := strconv.ParseInt(strings.TrimSpace(res.stdout), 10, 64)
				if err != nil {
					t.Fatalf("run %s printed %q", key, res.stdout)
				}
				return n
			}
			fence("a")
			fence("b")
			before := fence("b")

			if res := c.run("prune", "--free-for", "1h"); res.code != 0 || !strings.HasPrefix(res.stdout, "deleted 0 locks free for at least 1h0m0s") {
				t.Errorf("prune --free-for 1h: %d %q %q", res.code, res.stdout, res.stderr)
			}
			res := c.run("prune", "--free-for", "0s", "--batch", "1", "--json")
			if res.code != 0 {
				t.Fatalf("prune: %d %s", res.code, res.stderr)
			}
			var out struct {
				Deleted   int64 `json:"deleted"`
				FreeForMS int64 `json:"free_for_ms"`
				BatchSize int   `json:"batch_size"`
			}
			if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
				t.Fatalf("%v: %s", err, res.stdout)
			}
			if out.Deleted != 2 || out.BatchSize != 1 || out.FreeForMS != 0 {
				t.Errorf("prune --json: %+v, want 2 deleted in batches of 1", out)
			}
			if res := c.run("list"); res.code != 0 || strings.TrimSpace(res.stdout) != "no locks" {
				t.Errorf("list after prune: %d %q %q", res.code, res.stdout, res.stderr)
			}
			if after := fence("b"); after <= before {
				t.Errorf("fence %d after pruning, %d before", after, before)
			}

			for _, args := range [][]string{
				{"prune"},
				{"prune", "--free-for", "-1s"},
				{"prune", "--free-for", "1h", "--batch", "0"},
				{"prune", "--free-for", "1h", "extra"},
			} {
				if res := c.run(args...); res.code != exitUsage {
					t.Errorf("%v: exit %d, want %d (%s)", args, res.code, exitUsage, res.stderr)
				}
			}
		})
	}
}
