package distrlock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The ticker process of TestIntegrationOncePerPeriod: when DISTRLOCK_TEST_TICKER is set, the test binary
// runs this instead of the tests it was asked for.
const tickerEnv = "DISTRLOCK_TEST_TICKER"

// TestTickerProcess is a replica of a service with a scheduled job: every second it runs the job under
// DoExclusively with WithLockAtLeastFor(period), and prints the fence and the acquisition time on the
// database's clock of each run. It runs only as a child of TestIntegrationOncePerPeriod.
func TestTickerProcess(t *testing.T) {
	spec := os.Getenv(tickerEnv)
	if spec == "" {
		t.Skip("runs as a child process of TestIntegrationOncePerPeriod")
	}
	// dialect|driver|dsn|table|period|duration
	f := strings.Split(spec, "|")
	period, _ := time.ParseDuration(f[4])
	duration, _ := time.ParseDuration(f[5])
	tdb := openDB(t, "ticker", Dialect(f[0]), f[1], f[2])
	m, err := NewDBManager(tdb.dialect, WithTableName(f[3]))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for end := time.Now().Add(duration); time.Now().Before(end); <-tick.C {
		l := integLock(t, m, tdb.db, "cron")
		err := l.DoExclusively(ctx, tdb.db, func(ctx context.Context) error {
			info, err := m.Get(ctx, tdb.db, "cron")
			if err != nil {
				return err
			}
			fmt.Printf("ran %d %d\n", l.Fence(), info.AcquiredAt.UnixMicro())
			return nil
		}, WithLockTTL(2*period), WithLockAtLeastFor(period))
		if err != nil && !errorsIsContention(err) {
			fmt.Printf("error %v\n", err)
		}
	}
}

// TestIntegrationOncePerPeriod: three processes ticking every second, each running a job guarded with
// WithLockAtLeastFor(5 s) for 30 s, run it 6 ± 1 times in all, never twice within one period.
func TestIntegrationOncePerPeriod(t *testing.T) {
	if os.Getenv(tickerEnv) != "" {
		t.Skip("this is a ticker process")
	}
	if testing.Short() {
		t.Skip("30 s of ticking")
	}
	t.Parallel()
	const period, duration = 5 * time.Second, 30 * time.Second
	integEach(t, allDBs(t), func(t *testing.T, tdb *testDB) {
		if tdb.name != "postgres" && tdb.name != "mariadb" && tdb.name != "sqlite" {
			t.Skip("one session setting per database is enough")
		}
		m := newTestManager(t, tdb)
		var (
			mu   sync.Mutex
			runs [][2]int64 // fence, acquired at (µs)
			errs []string
			wg   sync.WaitGroup
		)
		for range 3 {
			cmd := exec.Command(os.Args[0], "-test.run=^TestTickerProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s|%s|%v|%v", tickerEnv, tdb.dialect, tdb.driver, tdb.dsn, m.table, period, duration))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					line := sc.Text()
					mu.Lock()
					switch f := strings.Fields(line); {
					case len(f) == 3 && f[0] == "ran":
						fence, _ := strconv.ParseInt(f[1], 10, 64)
						at, _ := strconv.ParseInt(f[2], 10, 64)
						runs = append(runs, [2]int64{fence, at})
					case strings.HasPrefix(line, "error"):
						errs = append(errs, line)
					}
					mu.Unlock()
				}
				if err := cmd.Wait(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("ticker process: %v", err))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, e := range errs {
			t.Error(e)
		}
		slices.SortFunc(runs, func(a, b [2]int64) int { return int(a[0] - b[0]) })
		t.Logf("%s: %d runs by 3 processes in %v: %v", tdb.name, len(runs), duration, runs)
		if len(runs) < 5 || len(runs) > 7 {
			t.Errorf("the job ran %d times in %v with a period of %v, want 6 ± 1", len(runs), duration, period)
		}
		for i := 1; i < len(runs); i++ {
			if gap := time.Duration(runs[i][1]-runs[i-1][1]) * time.Microsecond; gap < period {
				t.Errorf("runs %d and %d (fences %d, %d) started %v apart on the database's clock, want at least %v",
					i-1, i, runs[i-1][0], runs[i][0], gap, period)
			}
		}
	})
}

func errorsIsContention(err error) bool { return errors.Is(err, ErrLockAlreadyAcquired) }
