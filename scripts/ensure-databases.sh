#!/usr/bin/env bash
# ensure-databases.sh makes sure the databases of the integration tests are reachable:
#
#   PostgreSQL  127.0.0.1:5432  user postgres, trust auth, database test
#   MariaDB     127.0.0.1:3306  user root, empty password, database test
#
# In order: use the servers that answer; else start the locally installed ones; else, as root with apt-get,
# install Debian's postgresql and mariadb-server, configure them as above and start them; else explain what
# to do and fail. It prints nothing when everything is already in place, and running it again changes
# nothing.
#
# A database whose DSN is set to something else (DISTRLOCK_POSTGRES_DSN, DISTRLOCK_MYSQL_DSN) is the
# caller's business: the script leaves it alone, and the tests report it if it cannot be reached.
set -euo pipefail

readonly PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres PG_DB=test
readonly MY_HOST=127.0.0.1 MY_PORT=3306 MY_USER=root MY_DB=test
readonly DEFAULT_POSTGRES_DSN="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
readonly DEFAULT_MYSQL_DSN="root@tcp(127.0.0.1:3306)/test"
readonly WAIT_SECONDS=30

log() { echo "ensure-databases: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# tcp_open reports whether something accepts TCP connections on host:port.
tcp_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

pg_up() {
	if have pg_isready; then
		pg_isready -q -t 2 -h "$PG_HOST" -p "$PG_PORT"
	else
		tcp_open "$PG_HOST" "$PG_PORT"
	fi
}

mariadb_admin() {
	if have mariadb-admin; then mariadb-admin "$@"; else mysqladmin "$@"; fi
}

mariadb_client() {
	if have mariadb; then mariadb "$@"; else mysql "$@"; fi
}

my_up() {
	if have mariadb-admin || have mysqladmin; then
		# ping succeeds whenever the server answers, even if the credentials are refused.
		mariadb_admin --protocol=tcp -h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER" --connect-timeout=2 ping \
			>/dev/null 2>&1
	else
		tcp_open "$MY_HOST" "$MY_PORT"
	fi
}

# The two servers this run looks after: those whose DSN is unset or the default.
manage_pg=1
manage_my=1
if [[ -n "${DISTRLOCK_POSTGRES_DSN:-}" && "$DISTRLOCK_POSTGRES_DSN" != "$DEFAULT_POSTGRES_DSN" ]]; then
	manage_pg=0
fi
if [[ -n "${DISTRLOCK_MYSQL_DSN:-}" && "$DISTRLOCK_MYSQL_DSN" != "$DEFAULT_MYSQL_DSN" ]]; then
	manage_my=0
fi

pg_missing() { ((manage_pg)) && ! pg_up; }
my_missing() { ((manage_my)) && ! my_up; }
any_missing() { pg_missing || my_missing; }

# wait_for_servers waits until every managed server answers, for at most WAIT_SECONDS.
wait_for_servers() {
	local deadline=$((SECONDS + WAIT_SECONDS))
	while any_missing; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 0.5
	done
}

# start_pg starts every PostgreSQL cluster named main that Debian's tools know, as the machine's own set-up
# does. "Already running" is not an error.
start_pg() {
	have pg_ctlcluster && [[ -d /etc/postgresql ]] || return 1
	local dir version started=1
	for dir in /etc/postgresql/*/main; do
		[[ -d "$dir" ]] || continue
		version=$(basename "$(dirname "$dir")")
		log "starting PostgreSQL $version"
		pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
		started=0
	done
	return "$started"
}

# start_my starts MariaDB the way the machine's own set-up does.
start_my() {
	[[ -x /usr/sbin/mariadbd ]] || return 1
	if id mysql >/dev/null 2>&1; then
		# /run is emptied at boot; the server needs its socket directory.
		install -d -o mysql -g mysql -m 0755 /run/mysqld 2>/dev/null || true
	fi
	log "starting MariaDB"
	start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >&2 || return 1
}

start_installed() {
	local tried=1
	if pg_missing && start_pg; then tried=0; fi
	if my_missing && start_my; then tried=0; fi
	return "$tried"
}

# install_debian installs what is missing from Debian's packages, then configures and starts it.
install_debian() {
	local packages=()
	if pg_missing && ! have pg_ctlcluster; then packages+=(postgresql); fi
	if my_missing && [[ ! -x /usr/sbin/mariadbd ]]; then packages+=(mariadb-server); fi
	if ((${#packages[@]} == 0)); then
		why+=("the servers are installed here, so there is nothing to install")
		return 1
	fi
	if [[ $(id -u) -ne 0 ]] || ! have apt-get; then
		why+=("installing ${packages[*]} from Debian's packages needs root and apt-get")
		return 1
	fi
	log "installing ${packages[*]} from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	# Called as a condition, where set -e does not apply: every step checks its own status.
	why+=("installing ${packages[*]} from Debian's packages failed (see the output above)")
	apt-get update -qq >&2 || return 1
	apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2 || return 1
	local p
	for p in "${packages[@]}"; do
		case "$p" in
		postgresql) configure_new_pg || return 1 ;;
		mariadb-server) configure_new_my || return 1 ;;
		esac
	done
}

# configure_new_pg gives a freshly installed PostgreSQL a cluster with trust auth on 127.0.0.1, and starts it.
configure_new_pg() {
	local version
	version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
	[[ -n "$version" ]] || return 1
	if [[ ! -d "/etc/postgresql/$version/main" ]]; then
		pg_createcluster --port "$PG_PORT" "$version" main >&2 || return 1
	fi
	local hba="/etc/postgresql/$version/main/pg_hba.conf"
	if ! grep -Eq "^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust" "$hba"; then
		# pg_hba.conf is read top down and the first matching line wins.
		{
			echo "# added by distrlock's scripts/ensure-databases.sh: the tests connect without a password"
			echo "host all all 127.0.0.1/32 trust"
			echo "host all all ::1/128 trust"
			cat "$hba"
		} >"$hba.new" || return 1
		chown --reference="$hba" "$hba.new" && chmod --reference="$hba" "$hba.new" && mv "$hba.new" "$hba" || return 1
	fi
	start_pg || true
	pg_ctlcluster --skip-systemctl-redirect "$version" main reload >&2 || true
}

# configure_new_my lets root in over TCP with an empty password, as the tests' default DSN does, and starts
# a freshly installed MariaDB. Debian's root otherwise logs in only through the Unix socket as root.
configure_new_my() {
	start_my || true
	local deadline=$((SECONDS + WAIT_SECONDS))
	until mariadb_admin -u root ping >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
	mariadb_client -u root <<-'SQL'
		ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
		CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
		GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
		FLUSH PRIVILEGES;
	SQL
}

explain_and_fail() {
	local missing=""
	if pg_missing; then missing="PostgreSQL on $PG_HOST:$PG_PORT"; fi
	if my_missing; then missing="${missing:+$missing and }MariaDB on $MY_HOST:$MY_PORT"; fi
	cat >&2 <<-EOF
		ensure-databases: not reachable: $missing.
	EOF
	local reason
	for reason in "${why[@]}"; do
		echo "  - $reason" >&2
	done
	cat >&2 <<-EOF

		The integration tests need:
		  PostgreSQL  $PG_HOST:$PG_PORT  user $PG_USER without a password (trust auth), database $PG_DB
		  MariaDB     $MY_HOST:$MY_PORT  user $MY_USER with an empty password, database $MY_DB
		             (MySQL 8.0+ or MariaDB 10.5+)

		Start such servers, for example with Docker:
		  docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test postgres
		  docker run -d -p 3306:3306 -e MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 -e MARIADB_DATABASE=test mariadb
		or point the tests at servers you already have (this script then leaves them alone):
		  export DISTRLOCK_POSTGRES_DSN='postgres://user:password@host:5432/db?sslmode=disable'
		  export DISTRLOCK_MYSQL_DSN='user:password@tcp(host:3306)/db'
		Unless CI=true, 'go test ./...' skips the tests of a database it cannot reach.
	EOF
	exit 1
}

# ensure_test_databases creates the test databases on the servers this script looks after, when it can
# reach them with the clients. A server that refuses the expected user is reported, since the tests could
# not use it either.
ensure_test_databases() {
	if ((manage_pg)) && have psql; then
		local exists
		if ! exists=$(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -w -tAq \
			-c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" 2>&1); then
			log "PostgreSQL on $PG_HOST:$PG_PORT answers but refuses user $PG_USER without a password: $exists"
			log "allow it (trust auth for 127.0.0.1 in pg_hba.conf) or set DISTRLOCK_POSTGRES_DSN"
			return 1
		fi
		if [[ "$exists" != 1 ]]; then
			log "creating PostgreSQL database $PG_DB"
			createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -w "$PG_DB" >&2
		fi
	fi
	if ((manage_my)) && { have mariadb || have mysql; }; then
		local out
		if ! out=$(mariadb_client --protocol=tcp -h "$MY_HOST" -P "$MY_PORT" -u "$MY_USER" \
			-e "CREATE DATABASE IF NOT EXISTS \`$MY_DB\`" 2>&1); then
			log "MariaDB on $MY_HOST:$MY_PORT answers but refuses user $MY_USER with an empty password: $out"
			log "allow it or set DISTRLOCK_MYSQL_DSN"
			return 1
		fi
	fi
}

# why collects, for the final explanation, the reasons each way of getting the servers failed.
why=()

main() {
	if any_missing; then
		if ! start_installed; then
			why+=("no local server to start (Debian's pg_ctlcluster, /usr/sbin/mariadbd)")
		elif ! wait_for_servers; then
			why+=("started the local servers, but they did not answer within ${WAIT_SECONDS} s (logs: /var/log/postgresql/, /var/log/mysql/error.log)")
		fi
		if any_missing; then
			if ! install_debian; then
				explain_and_fail
			elif ! wait_for_servers; then
				why+=("installed and started the servers, but they did not answer within ${WAIT_SECONDS} s")
				explain_and_fail
			fi
		fi
	fi
	ensure_test_databases
}

main "$@"
