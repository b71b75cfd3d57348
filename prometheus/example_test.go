package prometheus_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/distrlock/distrlock"
	distrlockprom "github.com/distrlock/distrlock/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite"
)

// Example registers a Collector, labelled by the part of each key before its first colon, and observes a
// manager's locks with it; serve the registry with promhttp.HandlerFor.
func Example() {
	dir, err := os.MkdirTemp("", "distrlock-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "locks.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	metrics := distrlockprom.New(distrlockprom.WithLockLabel(func(key string) string {
		kind, _, _ := strings.Cut(key, ":")
		return kind // "invoice:42" -> "invoice": a few series, not one per key
	}))
	registry := prometheus.NewRegistry()
	registry.MustRegister(metrics)
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite, distrlock.WithObserver(metrics))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := manager.CreateTable(ctx, db); err != nil {
		log.Fatal(err)
	}
	lock, err := manager.NewLock(ctx, db, "invoice:42")
	if err != nil {
		log.Fatal(err)
	}
	if err := lock.Acquire(ctx, db, distrlock.DefaultLockTTL); err != nil {
		log.Fatal(err)
	}
	families, err := registry.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if g := m.GetGauge(); g != nil {
				fmt.Println(f.GetName(), m.GetLabel()[0].GetValue(), g.GetValue())
			}
		}
	}
	// Output:
	// distrlock_lock_held invoice 1
}
