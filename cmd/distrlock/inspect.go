package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/distrlock/distrlock"
)

// lockJSON is how --json prints a lock.
type lockJSON struct {
	Key         string     `json:"key"`
	Held        bool       `json:"held"`
	Token       string     `json:"token,omitempty"`
	Owner       string     `json:"owner,omitempty"`
	Data        string     `json:"data,omitempty"` // UTF-8 text as is; other bytes as base64 in data_base64
	DataBase64  []byte     `json:"data_base64,omitempty"`
	Fence       int64      `json:"fence"`
	TTLMS       int64      `json:"ttl_ms"` // 0 when never acquired
	AcquiredAt  *time.Time `json:"acquired_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RemainingMS int64      `json:"remaining_ms"` // 0 when free
	Queued      int64      `json:"queued"`       // waiters of run --wait (AcquireWait) in the key's queue
}

// millis is d in whole milliseconds, as every duration in --json output.
func millis(d time.Duration) int64 { return d.Round(time.Millisecond).Milliseconds() }

func toJSON(i distrlock.LockInfo) lockJSON {
	j := lockJSON{Key: i.Key, Held: i.Held, Token: i.Token, Owner: i.Owner, Fence: i.Fence,
		TTLMS: millis(i.TTL), RemainingMS: millis(i.Remaining), Queued: i.Queued}
	if utf8.ValidString(i.Data) {
		j.Data = i.Data
	} else {
		j.DataBase64 = []byte(i.Data)
	}
	if !i.AcquiredAt.IsZero() {
		j.AcquiredAt = &i.AcquiredAt
	}
	if !i.ExpiresAt.IsZero() {
		j.ExpiresAt = &i.ExpiresAt
	}
	return j
}

func (a *app) printJSON(v any) int {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return a.failf(exitInternal, "%v", err)
	}
	return exitOK
}

func state(i distrlock.LockInfo) string {
	if i.Held {
		return "held"
	}
	return "free"
}

func (a *app) cmdList(ctx context.Context, args []string) int {
	fs, cf := a.newFlagSet("list", "list [--prefix PREFIX] [--held] [--json]",
		"Lists the locks in the table, by key: held ones with their owner, fence and remaining lease,\nfree ones with their last fence; QUEUED counts the waiters in each key's queue.")
	prefix := fs.String("prefix", "", "only keys that start with `PREFIX`")
	held := fs.Bool("held", false, "only locks that are held")
	rest, code, ok := a.parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(rest) > 0 {
		return a.failf(exitUsage, "list takes no arguments (did you mean --prefix %s?)", rest[0])
	}
	c, code, ok := a.open(ctx, cf, false)
	if !ok {
		return code
	}
	defer c.Close()
	infos, err := c.m.List(ctx, c.db, distrlock.ListOptions{Prefix: *prefix, HeldOnly: *held})
	if err != nil {
		return a.explain(c, err)
	}
	if cf.json {
		out := make([]lockJSON, 0, len(infos))
		for _, i := range infos {
			out = append(out, toJSON(i))
		}
		return a.printJSON(out)
	}
	if len(infos) == 0 {
		fmt.Fprintln(a.stdout, "no locks")
		return exitOK
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KEY\tSTATE\tOWNER\tFENCE\tREMAINING\tQUEUED")
	for _, i := range infos {
		remaining := "-"
		if i.Held {
			remaining = i.Remaining.Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%d\n", i.Key, state(i), orDash(i.Owner), i.Fence, remaining, i.Queued)
	}
	_ = w.Flush()
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) cmdInspect(ctx context.Context, args []string) int {
	fs, cf := a.newFlagSet("inspect", "inspect [--json] KEY",
		"Shows one lock: whether it is held, by which owner and token, its fence, its lease\non the database's clock, and how many waiters are queued for it.")
	rest, code, ok := a.parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(rest) != 1 {
		return a.failf(exitUsage, "inspect takes one KEY")
	}
	c, code, ok := a.open(ctx, cf, false)
	if !ok {
		return code
	}
	defer c.Close()
	i, err := c.m.Get(ctx, c.db, rest[0])
	if err != nil {
		return a.explain(c, err)
	}
	if cf.json {
		return a.printJSON(toJSON(i))
	}
	a.printInfo(i)
	return exitOK
}

func (a *app) printInfo(i distrlock.LockInfo) {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "key:\t%s\n", i.Key)
	fmt.Fprintf(w, "state:\t%s\n", state(i))
	if i.Fence == 0 && i.Token == "" {
		fmt.Fprintf(w, "history:\tnever acquired\n")
		_ = w.Flush()
		return
	}
	fmt.Fprintf(w, "owner:\t%s\n", orDash(i.Owner))
	fmt.Fprintf(w, "token:\t%s\n", orDash(i.Token))
	fmt.Fprintf(w, "fence:\t%d\n", i.Fence)
	if i.TTL > 0 {
		fmt.Fprintf(w, "ttl:\t%s\n", i.TTL)
	}
	if !i.AcquiredAt.IsZero() {
		fmt.Fprintf(w, "acquired at:\t%s (database clock)\n", i.AcquiredAt.Format(time.RFC3339Nano))
	}
	if i.Held {
		fmt.Fprintf(w, "expires at:\t%s (in %s)\n", i.ExpiresAt.Format(time.RFC3339Nano), i.Remaining.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "queued:\t%d waiters\n", i.Queued)
	if len(i.Data) > 0 {
		if utf8.ValidString(i.Data) {
			fmt.Fprintf(w, "data:\t%s\n", i.Data)
		} else {
			fmt.Fprintf(w, "data:\t%d bytes\n", len(i.Data))
		}
	}
	_ = w.Flush()
}

func (a *app) cmdRelease(ctx context.Context, args []string) int {
	fs, cf := a.newFlagSet("release", "release [--json] KEY (--token TOKEN | --force)",
		"Frees a lock. With --token it frees the lock only if that token holds it. With --force it frees it\nwhoever holds it, and says whom it overrode: that holder's work is no longer protected.")
	token := fs.String("token", "", "free the lock only if `TOKEN` holds it")
	force := fs.Bool("force", false, "free the lock whoever holds it")
	rest, code, ok := a.parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(rest) != 1 {
		return a.failf(exitUsage, "release takes one KEY")
	}
	key := rest[0]
	if (*token == "") == !*force {
		return a.failf(exitUsage, "release needs exactly one of --token TOKEN and --force")
	}
	c, code, ok := a.open(ctx, cf, false)
	if !ok {
		return code
	}
	defer c.Close()

	var overridden *distrlock.LockInfo
	if *force {
		i, err := c.m.Get(ctx, c.db, key)
		if err != nil {
			return a.explain(c, err)
		}
		if !i.Held {
			return a.failf(exitNotFound, "lock %q is not held: nothing to release", key)
		}
		*token, overridden = i.Token, &i
	}
	err := c.m.ReleaseWithToken(ctx, c.db, key, *token)
	switch {
	case errors.Is(err, distrlock.ErrLockAlreadyReleased):
		if *force {
			return a.failf(exitNotFound, "lock %q changed hands while being released: run the command again", key)
		}
		return a.failf(exitNotFound, "lock %q is not held under token %s (released, expired or taken by another)", key, *token)
	case err != nil:
		return a.explain(c, err)
	}
	if cf.json {
		out := map[string]any{"key": key, "released": true}
		if overridden != nil {
			out["overridden"] = toJSON(*overridden)
		}
		return a.printJSON(out)
	}
	if overridden != nil {
		fmt.Fprintf(a.stdout, "released %q by force, overriding owner %s, token %s, fence %d, which had %s left;\n"+
			"that holder may still be working: its work is no longer protected by the lock\n",
			key, orDash(overridden.Owner), overridden.Token, overridden.Fence, overridden.Remaining.Round(time.Millisecond))
	} else {
		fmt.Fprintf(a.stdout, "released %q\n", key)
	}
	return exitOK
}
