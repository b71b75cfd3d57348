package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestMain lets the test binary serve as the listening processes, as the command does.
func TestMain(m *testing.M) {
	if isListener(os.Args) {
		os.Exit(listenerMain())
	}
	os.Exit(m.Run())
}

// TestNoticeSmoke runs one short measurement with two listening processes and checks that each received
// every notice (measure fails otherwise) and that the times are plausible: the notice arrives after the
// release started, within a second.
func TestNoticeSmoke(t *testing.T) {
	c := config{dsn: os.Getenv(dsnEnv), listeners: "2", count: 30, idle: time.Millisecond}
	if c.dsn == "" {
		c.dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	conn, err := pgx.Connect(t.Context(), c.dsn)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	conn.Close(context.Background())
	r, err := measure(t.Context(), c, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.arrival) != 2 || r.release <= 0 {
		t.Fatalf("%+v", r)
	}
	for _, d := range r.arrival {
		if d <= 0 || d > time.Second {
			t.Errorf("notice arrived %v after the release started", d)
		}
	}
	var out strings.Builder
	if err := run(t.Context(), &out, c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| 2 | ") {
		t.Errorf("no row for 2 listeners:\n%s", out.String())
	}
	for _, bad := range []config{{dsn: c.dsn, listeners: "1", count: 0}, {dsn: c.dsn, listeners: "1", count: 1, idle: -1}, {dsn: c.dsn, listeners: "0", count: 1}} {
		if err := run(t.Context(), io.Discard, bad); err == nil {
			t.Errorf("run(%+v) = nil, want an error", bad)
		}
	}
}
