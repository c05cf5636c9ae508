#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for the tests of metadata/pgstore (and, later, the end-to-end tests).
#
#   .ci/postgres.sh install            apt-get install postgresql-15 if its binaries are missing (CI runs as
#                                      root on a fresh Debian machine)
#   eval "$(.ci/postgres.sh start)"    initdb a temporary cluster, start it on a free 127.0.0.1 port with its
#                                      unix socket in the same temporary directory, create the role and
#                                      database mlgate_test, and export MLGATE_TEST_POSTGRES_DSN
#   .ci/postgres.sh stop               stop the server and remove its data
#   .ci/postgres.sh pause              stop the server (pg_ctl stop -m fast), keeping its data and port, as
#                                      a database that went down; clients' connections are closed
#   .ci/postgres.sh resume             start a paused server again on the same port with the same data
#
# MLGATE_POSTGRES_STATE names the state directory (default .tools/postgres): a test that stops its
# database gives a directory of its own, and so gets a cluster of its own, leaving the shared one to
# the tests running beside it.
#
# start runs install first, is idempotent (a running server of ours is stopped and replaced, so every
# start hands out an empty cluster) and writes only the export line to stdout; progress and errors go to
# stderr, the server log to the cluster directory. As root, initdb and pg_ctl run as the postgres user
# (initdb refuses root); as anyone else, as that user.
#
# The cluster is for tests only: trust authentication on 127.0.0.1 and the socket, and fsync off (a
# crash loses it anyway, and every test starts from an empty schema).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${MLGATE_POSTGRES_STATE:-$ROOT/.tools/postgres} # holds only the path of the cluster directory
PGBIN=${MLGATE_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}
DB=mlgate_test
ROLE=mlgate_test

log() { echo "postgres: $*" >&2; }

# as_pg runs a command as the postgres user when root (initdb and postgres refuse to run as root).
as_pg() {
	if ((EUID == 0)); then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

install() {
	if [[ -x $PGBIN/initdb && -x $PGBIN/pg_ctl ]]; then
		return 0
	fi
	if ((EUID != 0)); then
		log "$PGBIN/initdb is missing; install postgresql-15 (apt-get install -y postgresql-15) or set MLGATE_POSTGRES_BIN"
		return 1
	fi
	log "installing postgresql-15 with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	# The package's postinst creates and starts a default cluster on 5432; policy-rc.d keeps it stopped
	# where a policy exists, and either way ours uses its own directory and port.
	apt-get install -y -qq --no-install-recommends postgresql-15 >&2
	[[ -x $PGBIN/initdb ]] || { log "postgresql-15 installed but $PGBIN/initdb is missing"; return 1; }
}

# free_port prints a port on 127.0.0.1 that nothing listens on (a race with other processes is handled
# by start's retries).
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# run_server starts the cluster in $1 on port $2 and waits until it accepts connections.
run_server() {
	# Parallel storetest subtests each open a small pool, hence the connection limit.
	as_pg "$PGBIN/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 start \
		-o "-c listen_addresses=127.0.0.1 -p $2 -k $1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
		>/dev/null 2>&1
}

# cluster_dir prints the directory of the cluster start made, or fails when there is none.
cluster_dir() {
	[[ -f $STATE/dir ]] || { log "no cluster in $STATE: run start first"; return 1; }
	cat "$STATE/dir"
}

pause() {
	local dir
	dir=$(cluster_dir)
	as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
	log "paused the server of $dir"
}

resume() {
	local dir port
	dir=$(cluster_dir)
	port=$(cat "$dir/port")
	run_server "$dir" "$port" || {
		log "server did not start again on port $port:"
		tail -n 5 "$dir/server.log" >&2 || true
		return 1
	}
	log "resumed the server of $dir on port $port"
}

stop() {
	[[ -f $STATE/dir ]] || return 0
	local dir
	dir=$(cat "$STATE/dir")
	if [[ -d $dir/data ]]; then
		as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir" "$STATE/dir"
}

start() {
	install
	stop
	mkdir -p "$STATE"
	# The cluster lives under /tmp, not in the repository: the postgres user must be able to reach it, and a
	# checkout under /root is not reachable by anyone else.
	local dir port
	dir=$(mktemp -d "${TMPDIR:-/tmp}/mlgate-pg.XXXXXX")
	echo "$dir" >"$STATE/dir"
	chmod 755 "$dir"
	((EUID != 0)) || chown postgres: "$dir"
	as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || {
		log "initdb failed:"
		tail -n 20 "$dir/initdb.log" >&2
		return 1
	}
	for _ in 1 2 3; do
		port=$(free_port)
		if run_server "$dir" "$port"; then
			break
		fi
		log "server did not start on port $port:"
		tail -n 5 "$dir/server.log" >&2 || true
		port=
	done
	[[ -n $port ]] || return 1
	echo "$port" >"$dir/port" # for resume
	as_pg "$PGBIN/psql" -qX -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres >/dev/null <<EOF
CREATE ROLE $ROLE LOGIN;
CREATE DATABASE $DB OWNER $ROLE;
EOF
	log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') at 127.0.0.1:$port, data in $dir"
	echo "export MLGATE_TEST_POSTGRES_DSN='postgres://$ROLE@127.0.0.1:$port/$DB?sslmode=disable'"
}

case ${1:-} in
install) install ;;
start) start ;;
stop) stop ;;
pause) pause ;;
resume) resume ;;
*)
	echo "usage: $0 install|start|stop|pause|resume" >&2
	exit 2
	;;
esac
