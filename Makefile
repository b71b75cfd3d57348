# make test: what CI runs (.ci/run) and what a fresh clone needs to go green.
# make bench: the benchmarks. make quickstart: the zero-setup demo on SQLite. make torture: the long fault run.
# make scale-test: the scale-out topologies (PgBouncer, a standby and failover, Galera): not part of test,
# since it installs and runs servers as root; CI (.ci/run) runs it after test, with 10 s torture runs.

GO ?= go

# Modules nested below the root (bench/, internal/compat/, …) keep heavy test dependencies away from the
# library's users; make test enters each of them.
NESTED_MODULES = $(sort $(patsubst %/go.mod,%,$(shell find . -mindepth 2 -name go.mod -not -path './.git/*' -not -path '*/testdata/*')))

# The steps of test run in order, even under make -j.
.NOTPARALLEL:

.PHONY: test databases fmt-check vet unit nested bench quickstart torture scale-test

test: databases fmt-check vet unit nested

# PostgreSQL and MariaDB for the integration tests (scripts/ensure-databases.sh), and the C compiler and SQLite
# headers that internal/syssqlite links the system's SQLite with (scripts/ensure-system-sqlite.sh).
databases:
	scripts/ensure-databases.sh
	scripts/ensure-system-sqlite.sh

fmt-check:
	@out="$$(gofmt -l .)"; \
	if [ -n "$$out" ]; then echo "gofmt -l: run gofmt -w on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# One package at a time (-p 1): the throughput and timing tests of one package must not share the two CPUs
# of a small CI machine with another package's torture run.
unit:
	$(GO) test -race -count=1 -p 1 ./...

# A module's file testflags, if present, holds extra flags for its vet and test (internal/syssqlite's
# -tags libsqlite3, which links the system's SQLite).
nested:
	@set -e; for dir in $(NESTED_MODULES); do \
		echo "==> $$dir"; \
		flags=""; if [ -f "$$dir/testflags" ]; then flags="$$(cat "$$dir/testflags")"; fi; \
		(cd "$$dir" && $(GO) vet $$flags ./... && $(GO) test -race -count=1 $$flags ./...); \
	done

# The root benchmarks, then bench/ (a module of its own: the peers stay out of the library's go.sum), which
# prints a Markdown table of distrlock beside pglock, redislock, go-dbkit and synch re-enacted, and the floors,
# then bench/fleet (worker processes contending for one key, and the load of a waiting process; about 3 min).
bench: databases
	$(GO) test -run '^$$' -bench . .
	cd bench && $(GO) run .
	cd bench && $(GO) run ./fleet

quickstart:
	$(GO) run ./examples/quickstart

# The long torture run (minutes; make test runs a short one). TORTURE_FLAGS="-restart" also restarts the
# local database servers, which needs root and disturbs anything else using them.
TORTURE_FLAGS ?=
torture: databases
	$(GO) run ./internal/torture/cmd/torture -duration 5m $(TORTURE_FLAGS)

# The integration tests and a short torture run through each scale-out topology (scripts/scale/*.sh: PgBouncer
# in transaction mode, a primary with a synchronous standby and its failover, a Galera cluster), on servers of
# their own that it installs when missing (needs root), starts and stops; see the top of scripts/scale-test.sh.
scale-test:
	scripts/scale-test.sh
