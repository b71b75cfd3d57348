#!/usr/bin/env bash
# scale/postgres.sh runs the PostgreSQL scale-out topology of `make scale-test`, on loopback ports and data
# directories of its own (never the servers on 5432/3306):
#
#   primary   127.0.0.1:25432  PostgreSQL, synchronous_standby_names = 'standby1', database test, trust auth
#   standby   127.0.0.1:25433  hot standby streaming from the primary as standby1 (synchronous)
#   pgbouncer 127.0.0.1:26432  PgBouncer, pool_mode = transaction, in front of the primary's database test
#
# Usage: scripts/scale/postgres.sh start|stop|env|status|stop-primary|promote|unsync|failover
#
#   start         installs what is missing (postgresql, pgbouncer from Debian's packages, as root), creates the
#                 clusters on first use and starts the three servers; running it again changes nothing.
#   stop          stops all three; the data stays (start resumes it). DISTRLOCK_SCALE_CLEAN=1 also deletes it.
#   env           prints `export VAR=...` lines for the tests (DISTRLOCK_PG_PRIMARY_DSN, DISTRLOCK_PG_STANDBY_DSN,
#                 DISTRLOCK_PGBOUNCER_DSN, DISTRLOCK_PG_SCALE_SCRIPT).
#   stop-primary  stops the primary at once (pg_ctl -m immediate): a crash, as far as its clients can tell.
#   promote       promotes the standby. It keeps synchronous_standby_names, so its writes wait for a standby
#                 that does not exist (the trap of docs/scale-out.md) until `unsync`.
#   unsync        clears synchronous_standby_names on every running node and reloads it.
#   failover      stop-primary, promote, unsync. A topology that failed over is rebuilt by `stop` with
#                 DISTRLOCK_SCALE_CLEAN=1, then `start`.
#
# Data, logs and sockets go under ${DISTRLOCK_SCALE_DIR:-/tmp/distrlock-scale}/postgres. PostgreSQL and
# PgBouncer refuse to run as root: as root the servers run as the postgres user.
set -euo pipefail

readonly BASE="${DISTRLOCK_SCALE_DIR:-/tmp/distrlock-scale}/postgres"
# Ports below 32768, outside Linux's ephemeral range: a client connection to the other servers could
# otherwise hold one of them as its local port and make the server fail to bind.
readonly PRIMARY_PORT=25432 STANDBY_PORT=25433 BOUNCER_PORT=26432
readonly HOST=127.0.0.1 DB=test SUPERUSER=postgres
readonly PRIMARY="$BASE/primary" STANDBY="$BASE/standby" BOUNCER="$BASE/pgbouncer" RUN="$BASE/run"
readonly SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

log() { echo "scale/postgres: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# as_pg runs a command as the user the servers run as: postgres when we are root, else ourselves.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_bin() {
	local dir
	dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)
	[[ -n "$dir" ]] || return 1
	echo "$dir"
}

ensure_packages() {
	local packages=()
	pg_bin >/dev/null || packages+=(postgresql)
	have pgbouncer || [[ -x /usr/sbin/pgbouncer ]] || packages+=(pgbouncer)
	((${#packages[@]} == 0)) && return 0
	if [[ $(id -u) -ne 0 ]] || ! have apt-get; then
		log "missing ${packages[*]}: install them (as root: apt-get install ${packages[*]})"
		exit 1
	fi
	log "installing ${packages[*]} from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
	# Debian's pgbouncer package starts a service on 6432 where it can: this topology runs its own.
	if [[ " ${packages[*]} " == *" pgbouncer "* ]] && [[ -x /etc/init.d/pgbouncer ]]; then
		/etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
	fi
}

running() { [[ -f "$1/postmaster.pid" ]] && as_pg "$BIN/pg_ctl" -D "$1" status >/dev/null 2>&1; }

wait_ready() {
	local port=$1 deadline=$((SECONDS + 30))
	until as_pg "$BIN/pg_isready" -q -h "$HOST" -p "$port"; do
		((SECONDS < deadline)) || {
			log "nothing answers on $HOST:$port; see $BASE/*.log"
			exit 1
		}
		sleep 0.2
	done
}

psql_at() {
	local port=$1
	shift
	as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$port" -U "$SUPERUSER" "$@"
}

init_primary() {
	[[ -f "$PRIMARY/PG_VERSION" ]] && return 0
	log "creating the primary in $PRIMARY"
	as_pg "$BIN/initdb" -D "$PRIMARY" -U "$SUPERUSER" -A trust --no-sync >/dev/null
	cat >>"$PRIMARY/postgresql.conf" <<-EOF
		# scale/postgres.sh
		listen_addresses = '$HOST'
		port = $PRIMARY_PORT
		unix_socket_directories = '$RUN'
		wal_level = replica
		max_wal_senders = 5
		hot_standby = on
		synchronous_standby_names = 'standby1'
		synchronous_commit = on
		fsync = off
		max_connections = 200
	EOF
	# trust for the loopback address, replication included; initdb's lines for local sockets stay.
	echo "host all,replication all $HOST/32 trust" >>"$PRIMARY/pg_hba.conf"
}

start_primary() {
	init_primary
	if ! running "$PRIMARY"; then
		as_pg "$BIN/pg_ctl" -D "$PRIMARY" -l "$BASE/primary.log" -w start >/dev/null
	fi
	wait_ready "$PRIMARY_PORT"
	if [[ $(psql_at "$PRIMARY_PORT" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'") != 1 ]]; then
		# Before the standby exists a synchronous commit would wait for it forever.
		PGOPTIONS="-c synchronous_commit=local" psql_at "$PRIMARY_PORT" -d postgres -c "CREATE DATABASE $DB"
	fi
}

start_standby() {
	if [[ ! -f "$STANDBY/PG_VERSION" ]]; then
		log "cloning the standby into $STANDBY"
		as_pg "$BIN/pg_basebackup" -h "$HOST" -p "$PRIMARY_PORT" -U "$SUPERUSER" -D "$STANDBY" -R -X stream -c fast \
			-d "application_name=standby1 host=$HOST port=$PRIMARY_PORT user=$SUPERUSER" >/dev/null
		cat >>"$STANDBY/postgresql.conf" <<-EOF
			# scale/postgres.sh: the standby
			port = $STANDBY_PORT
		EOF
	fi
	if ! running "$STANDBY"; then
		as_pg "$BIN/pg_ctl" -D "$STANDBY" -l "$BASE/standby.log" -w start >/dev/null
	fi
	wait_ready "$STANDBY_PORT"
	# A synchronous standby is one that the primary lists as sync; wait until it does, so the first
	# test's writes do not wait for it to catch up.
	local deadline=$((SECONDS + 30))
	until [[ $(psql_at "$PRIMARY_PORT" -d postgres -tAc \
		"SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby1' AND sync_state = 'sync'" 2>/dev/null) == 1 ]]; do
		((SECONDS < deadline)) || {
			log "the standby did not become synchronous within 30 s; see $BASE/standby.log"
			exit 1
		}
		sleep 0.2
	done
}

bouncer_pid() {
	[[ -f "$BOUNCER/pgbouncer.pid" ]] && kill -0 "$(cat "$BOUNCER/pgbouncer.pid")" 2>/dev/null &&
		cat "$BOUNCER/pgbouncer.pid"
}

start_bouncer() {
	as_pg mkdir -p "$BOUNCER"
	as_pg tee "$BOUNCER/pgbouncer.ini" >/dev/null <<-EOF
		; scale/postgres.sh: transaction pooling in front of the primary
		[databases]
		$DB = host=$HOST port=$PRIMARY_PORT dbname=$DB
		[pgbouncer]
		listen_addr = $HOST
		listen_port = $BOUNCER_PORT
		unix_socket_dir =
		auth_type = trust
		auth_file = $BOUNCER/userlist.txt
		pool_mode = transaction
		max_client_conn = 500
		default_pool_size = 20
		server_reset_query =
		ignore_startup_parameters = extra_float_digits,options
		logfile = $BASE/pgbouncer.log
		pidfile = $BOUNCER/pgbouncer.pid
		admin_users = $SUPERUSER
	EOF
	echo "\"$SUPERUSER\" \"\"" | as_pg tee "$BOUNCER/userlist.txt" >/dev/null
	if [[ -z "$(bouncer_pid)" ]]; then
		as_pg pgbouncer -d -q "$BOUNCER/pgbouncer.ini"
	fi
	local deadline=$((SECONDS + 30))
	until as_pg "$BIN/pg_isready" -q -h "$HOST" -p "$BOUNCER_PORT" -d "$DB"; do
		((SECONDS < deadline)) || {
			log "PgBouncer does not answer on $HOST:$BOUNCER_PORT; see $BASE/pgbouncer.log"
			exit 1
		}
		sleep 0.2
	done
}

cmd_start() {
	ensure_packages
	BIN=$(pg_bin)
	mkdir -p "$BASE"
	[[ $(id -u) -eq 0 ]] && chown postgres: "$BASE"
	chmod 0755 "$(dirname "$BASE")" "$BASE" 2>/dev/null || true
	as_pg mkdir -p "$RUN"
	if [[ -f "$PRIMARY/standby.signal" || (-f "$STANDBY/PG_VERSION" && ! -f "$STANDBY/standby.signal") ]]; then
		log "this topology failed over; rebuild it: DISTRLOCK_SCALE_CLEAN=1 $0 stop && $0 start"
		exit 1
	fi
	start_primary
	start_standby
	start_bouncer
	log "primary :$PRIMARY_PORT, synchronous standby :$STANDBY_PORT, PgBouncer (transaction) :$BOUNCER_PORT"
}

cmd_stop() {
	local pid
	if pid=$(bouncer_pid); then
		kill "$pid"
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	fi
	if BIN=$(pg_bin); then
		local dir
		for dir in "$STANDBY" "$PRIMARY"; do
			if running "$dir"; then
				as_pg "$BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
			fi
		done
	fi
	if [[ "${DISTRLOCK_SCALE_CLEAN:-}" == 1 ]]; then
		rm -rf "$BASE"
	fi
}

cmd_env() {
	cat <<-EOF
		export DISTRLOCK_PG_PRIMARY_DSN='postgres://$SUPERUSER@$HOST:$PRIMARY_PORT/$DB?sslmode=disable'
		export DISTRLOCK_PG_STANDBY_DSN='postgres://$SUPERUSER@$HOST:$STANDBY_PORT/$DB?sslmode=disable'
		export DISTRLOCK_PGBOUNCER_DSN='postgres://$SUPERUSER@$HOST:$BOUNCER_PORT/$DB?sslmode=disable'
		export DISTRLOCK_PG_SCALE_SCRIPT='$SCRIPT_PATH'
	EOF
}

cmd_status() {
	BIN=$(pg_bin)
	local dir
	for dir in "$PRIMARY" "$STANDBY"; do
		if running "$dir"; then
			local role=primary
			[[ -f "$dir/standby.signal" ]] && role=standby
			echo "$(basename "$dir"): running ($role)"
		else
			echo "$(basename "$dir"): stopped"
		fi
	done
	if bouncer_pid >/dev/null; then echo "pgbouncer: running"; else echo "pgbouncer: stopped"; fi
}

cmd_stop_primary() {
	BIN=$(pg_bin)
	if running "$PRIMARY"; then
		as_pg "$BIN/pg_ctl" -D "$PRIMARY" -m immediate -w stop >/dev/null
	fi
}

cmd_promote() {
	BIN=$(pg_bin)
	if [[ -f "$STANDBY/standby.signal" ]]; then
		as_pg "$BIN/pg_ctl" -D "$STANDBY" -w promote >/dev/null
	fi
}

cmd_unsync() {
	BIN=$(pg_bin)
	local port
	for port in "$PRIMARY_PORT" "$STANDBY_PORT"; do
		if as_pg "$BIN/pg_isready" -q -h "$HOST" -p "$port" &&
			[[ $(psql_at "$port" -d postgres -tAc "SELECT pg_is_in_recovery()") == f ]]; then
			psql_at "$port" -d postgres -c "ALTER SYSTEM SET synchronous_standby_names = ''" -c "SELECT pg_reload_conf()" >/dev/null
		fi
	done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
status) cmd_status ;;
stop-primary) cmd_stop_primary ;;
promote) cmd_promote ;;
unsync) cmd_unsync ;;
failover)
	cmd_stop_primary
	cmd_promote
	cmd_unsync
	;;
*)
	echo "usage: $0 start|stop|env|status|stop-primary|promote|unsync|failover" >&2
	exit 2
	;;
esac
