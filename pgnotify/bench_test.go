package pgnotify_test

import (
	"context"
	"testing"
	"time"

	"github.com/distrlock/distrlock"
)

// BenchmarkAcquireRelease: an acquire and a release of one key that nobody waits for, through a manager
// without a notifier and through one with a listening Listener while three more listen on the channel (the
// other processes of a fleet). A release that no ticket waits for publishes nothing, so push costs an
// uncontended lock nothing.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, listeners := range []int{0, 4} {
		name := "without notifier"
		if listeners > 0 {
			name = "with notifier, 4 listeners"
		}
		b.Run(name, func(b *testing.B) {
			db := e2eOpen(b)
			table, channel := e2eNames(b)
			var m *distrlock.DBManager
			var err error
			if listeners == 0 {
				m, err = distrlock.NewDBManager(distrlock.DialectPgx, distrlock.WithTableName(table))
			} else {
				for range listeners {
					m = newProcess(b, db, table, channel, true).m
				}
			}
			if err != nil {
				b.Fatal(err)
			}
			createTable(b, &process{db: db, m: m})
			ctx := context.Background()
			lock, err := m.NewLock(ctx, db, "bench")
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := lock.Acquire(ctx, db, time.Minute); err != nil {
					b.Fatal(err)
				}
				if err := lock.Release(ctx, db); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
