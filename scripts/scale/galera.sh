#!/usr/bin/env bash
# galera.sh runs a 3-node MariaDB Galera cluster of its own on loopback, for the scale tests (make scale-test):
#
#   scripts/scale/galera.sh start   install galera-4 and rsync if missing, start the nodes, wait until the
#                                   cluster has 3 synced nodes (does nothing when it already has)
#   scripts/scale/galera.sh stop    stop the nodes this script started (by their pid files), and only those
#   scripts/scale/galera.sh env     print the DSNs the Galera tests read: eval "$(scripts/scale/galera.sh env)"
#
#   node   SQL port  gcomm port  IST port  SST (rsync) port  data directory
#   n1     23306     24567       24577     24587             $DISTRLOCK_SCALE_DIR/galera/n1
#   n2     23307     24568       24578     24588             $DISTRLOCK_SCALE_DIR/galera/n2
#   n3     23308     24569       24579     24589             $DISTRLOCK_SCALE_DIR/galera/n3
#
# DISTRLOCK_SCALE_DIR defaults to /tmp/distrlock-scale. Each node is mariadbd --no-defaults with a socket, pid
# file and log of its own, so neither it nor the server on 3306 reads or touches the other's files. The user
# root has no password over TCP (test data only) and the database test exists. A start with no node running
# begins from empty data directories: the cluster is a fixture, not a store.
set -euo pipefail

readonly SCALE_DIR="${DISTRLOCK_SCALE_DIR:-/tmp/distrlock-scale}"
readonly BASE="$SCALE_DIR/galera"
readonly NODES=(1 2 3)
readonly PROVIDER=/usr/lib/galera/libgalera_smm.so
readonly CLUSTER_ADDRESS="gcomm://127.0.0.1:24567,127.0.0.1:24568,127.0.0.1:24569"
readonly WAIT_SECONDS=120

log() { echo "galera.sh: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# Ports below 32768, outside Linux's ephemeral range: a client connection to the other servers could
# otherwise hold one of them as its local port (seen: the rsync SST daemon failed to bind 44588).
sql_port() { echo $((23305 + $1)); }
gcomm_port() { echo $((24566 + $1)); }
ist_port() { echo $((24576 + $1)); }
sst_port() { echo $((24586 + $1)); }
dir() { echo "$BASE/n$1"; }
# The pid file mariadbd writes once it runs; before that, the pid start_node recorded.
pid_of() { cat "$(dir "$1")/mariadbd.pid" 2>/dev/null || cat "$(dir "$1")/started.pid" 2>/dev/null || true; }

# running reports whether node n's mariadbd, started by this script, is alive.
running() {
	local pid
	pid=$(pid_of "$1")
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -q mariadbd "/proc/$pid/comm" 2>/dev/null
}

client() {
	local n=$1
	shift
	mariadb --no-defaults --protocol=socket -S "$(dir "$n")/mariadbd.sock" -uroot -N -B "$@"
}

status() { client "$1" -e "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null | awk '{print $2}'; }

synced() { [[ "$(status "$1" wsrep_local_state_comment)" == Synced && "$(status "$1" wsrep_cluster_size)" == 3 ]]; }

cluster_ready() {
	local n
	for n in "${NODES[@]}"; do
		running "$n" && synced "$n" || return 1
	done
}

ensure_packages() {
	local missing=()
	[[ -f "$PROVIDER" ]] || missing+=(galera-4)
	have rsync || missing+=(rsync)
	have mariadbd || missing+=(mariadb-server)
	have mariadb || missing+=(mariadb-client)
	((${#missing[@]} == 0)) && return
	if [[ $(id -u) -ne 0 ]] || ! have apt-get; then
		log "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})"
		exit 1
	fi
	log "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# start_node starts node n; extra arguments go to mariadbd (--wsrep-new-cluster for the first).
start_node() {
	local n=$1 d
	shift
	d=$(dir "$n")
	mkdir -p "$d/data" "$d/tmp"
	local user=()
	if [[ $(id -u) -eq 0 ]]; then
		# Not as root: the joiner's rsync daemon would then write as nobody.
		chown -R mysql:mysql "$d"
		user=(--user=mysql)
	fi
	# --no-defaults must come first: nothing is read from /etc/mysql, which describes the server on 3306.
	mariadbd --no-defaults "${user[@]}" \
		--datadir="$d/data" --tmpdir="$d/tmp" --socket="$d/mariadbd.sock" --pid-file="$d/mariadbd.pid" \
		--log-error="$d/error.log" --port="$(sql_port "$n")" --bind-address=127.0.0.1 --skip-name-resolve \
		--innodb-buffer-pool-size=64M --innodb-log-file-size=32M --innodb-flush-log-at-trx-commit=2 \
		--binlog-format=ROW --innodb-autoinc-lock-mode=2 --default-storage-engine=InnoDB \
		--wsrep-on=ON --wsrep-provider="$PROVIDER" --wsrep-cluster-name=distrlock-scale \
		--wsrep-cluster-address="$CLUSTER_ADDRESS" --wsrep-node-name="n$n" --wsrep-node-address=127.0.0.1 \
		--wsrep-provider-options="gmcast.listen_addr=tcp://127.0.0.1:$(gcomm_port "$n");ist.recv_addr=127.0.0.1:$(ist_port "$n");gcache.size=64M" \
		--wsrep-sst-method=rsync --wsrep-sst-receive-address="127.0.0.1:$(sst_port "$n")" \
		"$@" >>"$d/stdout.log" 2>&1 &
	echo $! >"$d/started.pid"
	disown
}

# wait_for n what test: waits until test passes for node n.
wait_for() {
	local n=$1 what=$2
	shift 2
	local deadline=$((SECONDS + WAIT_SECONDS))
	until "$@"; do
		if ((SECONDS >= deadline)) || ! kill -0 "$(cat "$(dir "$n")/started.pid")" 2>/dev/null; then
			log "node n$n: $what did not happen (within ${WAIT_SECONDS}s, or mariadbd exited); the end of $(dir "$n")/error.log:"
			tail -n 30 "$(dir "$n")/error.log" >&2 || true
			exit 1
		fi
		sleep 0.5
	done
}

node_synced() { running "$1" && [[ "$(status "$1" wsrep_local_state_comment)" == Synced ]]; }

cmd_start() {
	if cluster_ready; then
		return
	fi
	ensure_packages
	local n any=0
	for n in "${NODES[@]}"; do
		running "$n" && any=1
	done
	if ((any)); then
		log "a partial cluster is running: stopping it to start afresh"
		cmd_stop
	fi
	rm -rf "$BASE"
	mkdir -p "$(dir 1)/data"
	local user=()
	if [[ $(id -u) -eq 0 ]]; then
		chown -R mysql:mysql "$BASE"
		user=(--user=mysql)
	fi
	mariadb-install-db --no-defaults "${user[@]}" --datadir="$(dir 1)/data" --auth-root-authentication-method=normal \
		--skip-test-db >"$(dir 1)/install.log" 2>&1 || {
		log "mariadb-install-db failed:"
		cat "$(dir 1)/install.log" >&2
		exit 1
	}
	start_node 1 --wsrep-new-cluster
	wait_for 1 "bootstrap" node_synced 1
	client 1 -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
		CREATE USER IF NOT EXISTS 'root'@'%'; GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
		CREATE DATABASE IF NOT EXISTS test;"
	# The joiners receive the first node's data by SST (rsync), one at a time.
	for n in 2 3; do
		start_node "$n"
		wait_for "$n" "joining" node_synced "$n"
	done
	wait_for 1 "a cluster of 3" cluster_ready
	log "3 nodes synced on 127.0.0.1:$(sql_port 1),$(sql_port 2),$(sql_port 3)"
}

cmd_stop() {
	local n pid
	for n in 3 2 1; do
		pid=$(pid_of "$n")
		if running "$n"; then
			kill "$pid"
			local deadline=$((SECONDS + 60))
			while kill -0 "$pid" 2>/dev/null; do
				if ((SECONDS >= deadline)); then
					log "node n$n (pid $pid) did not stop within 60s: killing it"
					kill -9 "$pid" 2>/dev/null || true
					break
				fi
				sleep 0.2
			done
		fi
		rm -f "$(dir "$n")/mariadbd.pid" "$(dir "$n")/started.pid"
	done
}

cmd_env() {
	local n
	for n in "${NODES[@]}"; do
		echo "export DISTRLOCK_GALERA_DSN$n='root@tcp(127.0.0.1:$(sql_port "$n"))/test'"
	done
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
*)
	echo "usage: $0 start|stop|env" >&2
	exit 2
	;;
esac
