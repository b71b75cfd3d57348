#!/usr/bin/env bash
# scale-test.sh (make scale-test) runs the integration tests and a short torture run through each scale-out
# topology, on servers of its own (never the ones on 5432/3306), and stops everything it started:
#
#   postgres  scripts/scale/postgres.sh: a primary with a synchronous hot standby, PgBouncer in transaction
#             mode in front of the primary
#   galera    scripts/scale/galera.sh: a 3-node MariaDB Galera cluster
#
# Each topology script takes start, stop and env (which prints `export VAR=...` lines); this script
# evaluates env and passes the variables to the tests:
#
#   DISTRLOCK_PGBOUNCER_DSN      PgBouncer, pool_mode = transaction, in front of the primary
#   DISTRLOCK_PG_PRIMARY_DSN     the primary, direct
#   DISTRLOCK_PG_STANDBY_DSN     its synchronous hot standby
#   DISTRLOCK_PG_SCALE_SCRIPT    scripts/scale/postgres.sh (TestScaleFailover calls its failover steps)
#   DISTRLOCK_GALERA_DSN1..3     the Galera nodes (scripts/scale/galera.sh)
#
# and sets, per run: DISTRLOCK_POSTGRES_DSN (PgBouncer with default_query_exec_mode=exec, or the primary),
# DISTRLOCK_PGNOTIFY_LISTEN_DSN (the primary: LISTEN needs a session), DISTRLOCK_PG_FAILOVER=1 for the
# failover test, which runs last because it stops the primary, and CI=true (an unreachable database fails).
#
# Settings: SCALE_TORTURE_DURATION (default 20s) and SCALE_TORTURE_WORKERS (default 4) for each torture run;
# SCALE_PG_TESTS and SCALE_PG_SKIP, the root package's tests run through PgBouncer (-run and -skip patterns;
# default the integration tests but those that need a session); SCALE_GALERA_TESTS (default Galera) and SCALE_GALERA_ROOT_TESTS (the general integration tests, with MariaDB on
# node 1); DISTRLOCK_SCALE_DIR, where the topologies keep their data
# (default /tmp/distrlock-scale; the PostgreSQL topology is deleted at the end, since the failover test
# consumed it). It exits non-zero when any step failed, after the summary.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly GO="${GO:-go}"
readonly TORTURE_DURATION="${SCALE_TORTURE_DURATION:-20s}" TORTURE_WORKERS="${SCALE_TORTURE_WORKERS:-4}"
readonly PG_TESTS="${SCALE_PG_TESTS:-Integration|StatementsPerOperation|Election|Scale}"
# Tests that need a session of their own, which transaction pooling does not give: a SET SESSION (it would stay
# on a server connection that other clients get next), a LISTEN, a lock_timeout startup parameter (PgBouncer
# refuses it). The scale tests cover the same behaviours on the standby and the primary.
readonly PG_SKIP="${SCALE_PG_SKIP:-TestIntegrationReadOnlySession|TestIntegrationHolderStopsWhenServerTurnsReadOnly|TestIntegrationReleasePublishes|TestIntegrationAcquireWaitRetriesLockTimeout}"
readonly GALERA_TESTS="${SCALE_GALERA_TESTS:-Galera}"
# The general integration tests with their MariaDB on one node of the cluster (their other databases too).
readonly GALERA_ROOT_TESTS="${SCALE_GALERA_ROOT_TESTS:-Integration|StatementsPerOperation|Election}"
# The root package's integration tests run every database at once; under -race on a shared 2-CPU machine the
# SQLite and MariaDB throughput floors of TestIntegrationMutualExclusion failed there (43 < 50, 195 < 200
# acquisitions in 5 s), so that run goes without the race detector unless SCALE_ROOT_RACE=-race (make test
# runs them with it). The other steps keep -race.
readonly ROOT_RACE="${SCALE_ROOT_RACE:-}"
export CI=true

summary=()
failed=0
started=()

stop_all() {
	local topo
	for topo in "${started[@]}"; do
		echo "==> stopping $topo" >&2
		if [[ "$topo" == postgres ]]; then
			DISTRLOCK_SCALE_CLEAN=1 scripts/scale/postgres.sh stop
		else
			"scripts/scale/$topo.sh" stop
		fi
	done
	started=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# step runs a command for a topology, keeps its output in a log, and records a summary line whose detail is
# the result lines the output matched.
step() {
	local topo=$1 name=$2 pattern=$3
	shift 3
	local log
	log=$(mktemp "/tmp/distrlock-scale-test.XXXXXX")
	echo "==> $topo: $name" >&2
	local start=$SECONDS status
	"$@" 2>&1 | tee "$log" >&2
	status=${PIPESTATUS[0]}
	local detail
	detail=$(grep -oE "$pattern" "$log" | sed 's/^/      /')
	if grep -q '^ *--- ' "$log"; then
		detail+=$'\n'"      tests and subtests: $(grep -c '^ *--- PASS' "$log") passed, $(grep -c '^ *--- SKIP' "$log") skipped, $(grep -c '^ *--- FAIL' "$log") failed"
	fi
	# The tests of a topology skip without its variables: a skip here means the step tested nothing.
	if ((status == 0)) && [[ -n "${STEP_NO_SKIPS:-}" ]] && grep -q '^ *--- SKIP' "$log"; then
		detail+=$'\n'"      a test skipped: its topology's variables were not set"
		status=1
	fi
	if ((status == 0)); then
		summary+=("$topo  PASS  $name ($((SECONDS - start)) s)" "$detail")
	else
		summary+=("$topo  FAIL  $name ($((SECONDS - start)) s; output in $log)" "$detail")
		failed=1
	fi
	((status == 0)) && rm -f "$log"
}

readonly GO_TEST_RESULTS='^(ok|FAIL)[[:space:]].*|^ *--- FAIL.*'
# The counts of a torture report: what ran, and the violations (all 0 when it passed).
readonly TORTURE_COUNTS='^[a-z]+: acquisitions [0-9]+|election terms [0-9]+ by [0-9]+ processes|faults map\[[^]]*\]|overlaps [0-9]+, fence regressions [0-9]+, stale writes accepted [0-9]+, stranded locks [0-9]+, period violations [0-9]+'

postgres() {
	started+=(postgres) # before start: a start that fails half-way leaves servers to stop
	if ! scripts/scale/postgres.sh start; then
		summary+=("postgres  FAIL  start" "")
		failed=1
		return
	fi
	eval "$(scripts/scale/postgres.sh env)"
	local bouncer="$DISTRLOCK_PGBOUNCER_DSN&default_query_exec_mode=exec"

	step postgres "root package tests ($PG_TESTS) through PgBouncer, exec mode" "$GO_TEST_RESULTS|default statement cache.*|first prepared.*" \
		env DISTRLOCK_POSTGRES_DSN="$bouncer" "$GO" test $ROOT_RACE -count=1 -v -run "$PG_TESTS" -skip "$PG_SKIP" .
	step postgres "pgnotify end-to-end through PgBouncer, listener on the primary" "$GO_TEST_RESULTS|[0-9]+ hand-overs, release returned.*" \
		env DISTRLOCK_POSTGRES_DSN="$bouncer" DISTRLOCK_PGNOTIFY_LISTEN_DSN="$DISTRLOCK_PG_PRIMARY_DSN" \
		"$GO" test -race -count=1 -v -run 'TestE2E' ./pgnotify
	step postgres "torture through PgBouncer, exec mode, $TORTURE_DURATION" "$TORTURE_COUNTS" \
		env DISTRLOCK_POSTGRES_DSN="$bouncer" \
		"$GO" run ./internal/torture/cmd/torture -db postgres -duration "$TORTURE_DURATION" -workers "$TORTURE_WORKERS"
	step postgres "torture on the primary with its synchronous standby, $TORTURE_DURATION" "$TORTURE_COUNTS" \
		env DISTRLOCK_POSTGRES_DSN="$DISTRLOCK_PG_PRIMARY_DSN" \
		"$GO" run ./internal/torture/cmd/torture -db postgres -duration "$TORTURE_DURATION" -workers "$TORTURE_WORKERS"
	STEP_NO_SKIPS=1 step postgres "failover (stops the primary, promotes the standby)" "$GO_TEST_RESULTS|fence [0-9]+; .*|fence before .*" \
		env DISTRLOCK_PG_FAILOVER=1 "$GO" test -race -count=1 -v -run 'TestScaleFailover' .
}

galera() {
	started+=(galera) # before start: a start that fails half-way leaves servers to stop
	if ! scripts/scale/galera.sh start; then
		summary+=("galera  FAIL  start" "")
		failed=1
		return
	fi
	eval "$(scripts/scale/galera.sh env)"
	STEP_NO_SKIPS=1 step galera "root package tests ($GALERA_TESTS)" "$GO_TEST_RESULTS" \
		"$GO" test -race -count=1 -v -run "$GALERA_TESTS" .
	step galera "root package integration tests ($GALERA_ROOT_TESTS) with MariaDB on node 1" "$GO_TEST_RESULTS" \
		env DISTRLOCK_MYSQL_DSN="$DISTRLOCK_GALERA_DSN1" "$GO" test $ROOT_RACE -count=1 -v -run "$GALERA_ROOT_TESTS" .
	step galera "torture across the nodes, $TORTURE_DURATION" "$TORTURE_COUNTS" \
		"$GO" run ./internal/torture/cmd/torture -db galera -duration "$TORTURE_DURATION" -workers "$TORTURE_WORKERS"
}

postgres
stop_all
if [[ -f scripts/scale/galera.sh ]]; then
	galera
	stop_all
else
	summary+=("galera  FAIL  scripts/scale/galera.sh does not exist" "")
	failed=1
fi

echo
echo "== make scale-test summary"
for line in "${summary[@]}"; do
	[[ -n "$line" ]] && echo "$line"
done
exit "$failed"
