package otel_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/distrlock/distrlock"
	distrlockotel "github.com/distrlock/distrlock/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	_ "modernc.org/sqlite"
)

// Example observes a manager's locks with OpenTelemetry, labelled by the part of each key before its first
// colon. A service passes its own MeterProvider (with an OTLP or Prometheus exporter) and TracerProvider,
// or none to use the global ones.
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

	reader := sdkmetric.NewManualReader()
	observer, err := distrlockotel.New(
		distrlockotel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))),
		distrlockotel.WithLockAttribute(func(key string) string {
			kind, _, _ := strings.Cut(key, ":")
			return kind // "invoice:42" -> "invoice": a few series, not one per key
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	manager, err := distrlock.NewDBManager(distrlock.DialectSQLite, distrlock.WithObserver(observer))
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

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if held, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "distrlock.lock.held" {
			lockAttr, _ := held.DataPoints[0].Attributes.Value("distrlock.lock")
			fmt.Println(m.Name, lockAttr.AsString(), held.DataPoints[0].Value)
		}
	}
	// Output:
	// distrlock.lock.held invoice 1
}
