package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"cirello.io/pglock"
	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"

	"github.com/distrlock/distrlock"
)

// locker is one library under test: acquire takes key and returns its release; do runs an empty function
// under the lock the way the library's own helper does (nil when it has none).
type locker struct {
	acquire func(ctx context.Context, key string) (release func(context.Context) error, err error)
	do      func(ctx context.Context, key string) error
	close   func()
	init    func(ctx context.Context, key string) error // optional, before measuring
	// commands, if set, counts what a library that is not SQL sends (Redis commands, each a round trip).
	commands func() int64
}

// ours is distrlock.
func ours(ctx context.Context, db *sql.DB, d distrlock.Dialect) (*locker, error) {
	m, err := distrlock.NewDBManager(d, distrlock.WithTableName("bench_distrlock"))
	if err != nil {
		return nil, err
	}
	if err := m.CreateTable(ctx, db); err != nil {
		return nil, err
	}
	noop := func(context.Context) error { return nil }
	return &locker{
		acquire: func(ctx context.Context, key string) (func(context.Context) error, error) {
			l, err := m.NewLock(ctx, db, key)
			if err != nil {
				return nil, err
			}
			if err := l.Acquire(ctx, db, time.Minute); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error { return l.Release(ctx, db) }, nil
		},
		do: func(ctx context.Context, key string) error {
			l, err := m.NewLock(ctx, db, key)
			if err != nil {
				return err
			}
			return l.DoExclusively(ctx, db, noop)
		},
		close: func() { _, _ = db.ExecContext(context.Background(), m.DropTableSQL()) },
	}, nil
}

// pglockLib is cirello.io/pglock v1.16.0 on its own driver, lib/pq.
func pglockLib(ctx context.Context, db *sql.DB) (*locker, error) {
	c, err := pglock.New(db, pglock.WithCustomTable("bench_pglock"), pglock.WithLeaseDuration(time.Minute),
		pglock.WithHeartbeatFrequency(0))
	if err != nil {
		return nil, err
	}
	if err := c.TryCreateTable(); err != nil {
		return nil, err
	}
	// Do heartbeats, as DoExclusively does.
	hb, err := pglock.New(db, pglock.WithCustomTable("bench_pglock"), pglock.WithLeaseDuration(time.Minute),
		pglock.WithHeartbeatFrequency(30*time.Second))
	if err != nil {
		return nil, err
	}
	return &locker{
		acquire: func(ctx context.Context, key string) (func(context.Context) error, error) {
			l, err := c.AcquireContext(ctx, key, pglock.FailIfLocked())
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error { return c.ReleaseContext(ctx, l) }, nil
		},
		do: func(ctx context.Context, key string) error {
			return hb.Do(ctx, key, func(context.Context, *pglock.Lock) error { return nil }, pglock.FailIfLocked())
		},
		close: func() { _ = c.DropTable() },
	}, nil
}

// redisLib is github.com/bsm/redislock on the local Redis.
func redisLib(ctx context.Context, addr string) (*locker, error) {
	client := redis.NewClient(&redis.Options{Addr: addr})
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, err
	}
	hook := &commandCounter{}
	client.AddHook(hook)
	rl := redislock.New(client)
	acquire := func(ctx context.Context, key string) (func(context.Context) error, error) {
		l, err := rl.Obtain(ctx, "bench:"+key, time.Minute, nil)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	}
	return &locker{
		acquire: acquire,
		do: func(ctx context.Context, key string) error { // redislock has no helper: obtain, run, release
			release, err := acquire(ctx, key)
			if err != nil {
				return err
			}
			return release(ctx)
		},
		close:    func() { _ = client.Close() },
		commands: hook.n.Load,
	}, nil
}

// commandCounter is a go-redis hook that counts the commands and pipelines sent, each one round trip.
type commandCounter struct{ n atomic.Int64 }

func (h *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// dbkitSQL is go-dbkit's distrlock, re-enacted from its source: NewLock inserts the key's row; Acquire,
// Extend and Release are one UPDATE each in autocommit, which its DoExclusively wraps in BEGIN/COMMIT.
type dbkitSQL struct{ create, insert, acquire, release, drop string }

var (
	dbkitPostgres = dbkitSQL{
		create:  `CREATE TABLE IF NOT EXISTS "bench_dbkit" (lock_key varchar(40) PRIMARY KEY, token uuid, expire_at timestamp)`,
		insert:  `INSERT INTO "bench_dbkit" (lock_key) VALUES ($1) ON CONFLICT (lock_key) DO NOTHING`,
		acquire: `UPDATE "bench_dbkit" SET expire_at = NOW() + $1::interval, token = $2 WHERE lock_key = $3 AND ((expire_at IS NULL OR expire_at < NOW()) OR token = $4)`,
		release: `UPDATE "bench_dbkit" SET expire_at = NULL WHERE lock_key = $1 AND token = $2 AND expire_at >= NOW()`,
		drop:    `DROP TABLE IF EXISTS "bench_dbkit"`,
	}
	dbkitMySQL = dbkitSQL{
		create:  "CREATE TABLE IF NOT EXISTS `bench_dbkit` (lock_key VARCHAR(40) PRIMARY KEY, token VARCHAR(36), expire_at BIGINT)",
		insert:  "INSERT IGNORE `bench_dbkit` (lock_key) VALUES (?)",
		acquire: "UPDATE `bench_dbkit` SET expire_at = UNIX_TIMESTAMP(DATE_ADD(CURTIME(4), INTERVAL ? MICROSECOND))*10000, token = ? WHERE lock_key = ? AND ((expire_at IS NULL OR expire_at < UNIX_TIMESTAMP(CURTIME(4))*10000) OR token = ?)",
		release: "UPDATE `bench_dbkit` SET expire_at = NULL WHERE lock_key = ? AND token = ? AND expire_at >= UNIX_TIMESTAMP(CURTIME(4))*10000",
		drop:    "DROP TABLE IF EXISTS `bench_dbkit`",
	}
)

const benchToken = "6f1c2f4e-9b7a-4c1d-8e2f-0a1b2c3d4e5f"

func dbkitLib(ctx context.Context, db *sql.DB, q dbkitSQL, postgres bool) (*locker, error) {
	if _, err := db.ExecContext(ctx, q.create); err != nil {
		return nil, err
	}
	ttl := any(time.Minute.Microseconds())
	if postgres {
		ttl = fmt.Sprintf("%d microseconds", time.Minute.Microseconds())
	}
	// changed runs one UPDATE and fails when it found no row to change (lock held, or not held).
	changed := func(res sql.Result, err error) error {
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return errors.New("lock held or not held")
		}
		return nil
	}
	// auto is its bare Acquire and Release: one UPDATE in autocommit on the executor given.
	auto := func(ctx context.Context, query string, args ...any) error {
		return changed(db.ExecContext(ctx, query, args...))
	}
	// inTx is how its DoExclusively runs each step: in a transaction of its own (dbkit.DoInTx).
	inTx := func(ctx context.Context, query string, args ...any) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := changed(tx.ExecContext(ctx, query, args...)); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	return &locker{
		acquire: func(ctx context.Context, key string) (func(context.Context) error, error) {
			// Bare Acquire + Release, the row made once by the warm-up's NewLock.
			if err := auto(ctx, q.acquire, ttl, benchToken, key, benchToken); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error { return auto(ctx, q.release, key, benchToken) }, nil
		},
		do: func(ctx context.Context, key string) error { // the package DoExclusively: NewLock, then both in transactions
			if _, err := db.ExecContext(ctx, q.insert, key); err != nil {
				return err
			}
			if err := inTx(ctx, q.acquire, ttl, benchToken, key, benchToken); err != nil {
				return err
			}
			return inTx(ctx, q.release, key, benchToken)
		},
		close: func() { _, _ = db.ExecContext(context.Background(), q.drop) },
		init:  func(ctx context.Context, key string) error { _, err := db.ExecContext(ctx, q.insert, key); return err },
	}, nil
}

// synchSQL is sosnovski/synch's lock, re-enacted from its documentation: an upsert that takes the key if it
// is free or expired, an immediate heartbeat UPDATE, and a DELETE on close.
type synchSQL struct{ create, upsert, heartbeat, delete, drop string }

var (
	synchPostgres = synchSQL{
		create:    `CREATE TABLE IF NOT EXISTS bench_synch (lock_key text PRIMARY KEY, owner text NOT NULL, expires_at timestamptz NOT NULL)`,
		upsert:    `INSERT INTO bench_synch (lock_key, owner, expires_at) VALUES ($1, $2, now() + interval '1 minute') ON CONFLICT (lock_key) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at WHERE bench_synch.expires_at < now()`,
		heartbeat: `UPDATE bench_synch SET expires_at = now() + interval '1 minute' WHERE lock_key = $1 AND owner = $2`,
		delete:    `DELETE FROM bench_synch WHERE lock_key = $1 AND owner = $2`,
		drop:      `DROP TABLE IF EXISTS bench_synch`,
	}
	synchMySQL = synchSQL{
		create:    "CREATE TABLE IF NOT EXISTS bench_synch (lock_key VARCHAR(255) PRIMARY KEY, owner VARCHAR(64) NOT NULL, expires_at DATETIME(6) NOT NULL)",
		upsert:    "INSERT INTO bench_synch (lock_key, owner, expires_at) VALUES (?, ?, UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE) ON DUPLICATE KEY UPDATE owner = IF(expires_at < UTC_TIMESTAMP(6), VALUES(owner), owner), expires_at = IF(owner = VALUES(owner), VALUES(expires_at), expires_at)",
		heartbeat: "UPDATE bench_synch SET expires_at = UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE WHERE lock_key = ? AND owner = ?",
		delete:    "DELETE FROM bench_synch WHERE lock_key = ? AND owner = ?",
		drop:      "DROP TABLE IF EXISTS bench_synch",
	}
)

func synchLib(ctx context.Context, db *sql.DB, q synchSQL) (*locker, error) {
	if _, err := db.ExecContext(ctx, q.create); err != nil {
		return nil, err
	}
	acquire := func(ctx context.Context, key string) (func(context.Context) error, error) {
		if _, err := db.ExecContext(ctx, q.upsert, key, benchToken); err != nil {
			return nil, err
		}
		if _, err := db.ExecContext(ctx, q.heartbeat, key, benchToken); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { _, err := db.ExecContext(ctx, q.delete, key, benchToken); return err }, nil
	}
	return &locker{
		acquire: acquire,
		do: func(ctx context.Context, key string) error {
			release, err := acquire(ctx, key)
			if err != nil {
				return err
			}
			return release(ctx)
		},
		close: func() { _, _ = db.ExecContext(context.Background(), q.drop) },
	}, nil
}

// floor is what the database cannot do faster: n primary-key UPDATEs in autocommit per "cycle", or a
// SELECT 1, or PostgreSQL's session advisory lock and unlock.
func floorUpdates(ctx context.Context, db *sql.DB, n int, postgres bool) (*locker, error) {
	create := "CREATE TABLE IF NOT EXISTS bench_floor (id INT PRIMARY KEY, v BIGINT NOT NULL)"
	if _, err := db.ExecContext(ctx, create); err != nil {
		return nil, err
	}
	_, _ = db.ExecContext(ctx, "INSERT INTO bench_floor (id, v) VALUES (1, 0)")
	update := "UPDATE bench_floor SET v = v + 1 WHERE id = ?"
	if postgres {
		update = "UPDATE bench_floor SET v = v + 1 WHERE id = $1"
	}
	cycle := func(ctx context.Context, key string) (func(context.Context) error, error) {
		for range n - 1 {
			if _, err := db.ExecContext(ctx, update, 1); err != nil {
				return nil, err
			}
		}
		return func(ctx context.Context) error { _, err := db.ExecContext(ctx, update, 1); return err }, nil
	}
	return &locker{acquire: cycle, close: func() { _, _ = db.ExecContext(context.Background(), "DROP TABLE IF EXISTS bench_floor") }}, nil
}

func floorSelect(db *sql.DB) *locker {
	return &locker{acquire: func(ctx context.Context, key string) (func(context.Context) error, error) {
		var one int
		return func(context.Context) error { return nil }, db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	}}
}

func floorAdvisory(ctx context.Context, db *sql.DB) (*locker, error) {
	conn, err := db.Conn(ctx) // advisory locks belong to a session
	if err != nil {
		return nil, err
	}
	return &locker{
		acquire: func(ctx context.Context, key string) (func(context.Context) error, error) {
			var ok bool
			if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", key).Scan(&ok); err != nil || !ok {
				return nil, fmt.Errorf("advisory lock: %v %v", ok, err)
			}
			return func(ctx context.Context) error {
				_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock(hashtext($1))", key)
				return err
			}, nil
		},
		close: func() { _ = conn.Close() },
	}, nil
}
