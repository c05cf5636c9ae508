#!/usr/bin/env bash
# Real S3 servers for the integration tests of backends/s3 and backends/minio.
#
#   .ci/s3-servers.sh install        build minio and versitygw into .tools/bin (git-ignored) if missing
#   eval "$(.ci/s3-servers.sh start)" start both on free 127.0.0.1 ports, create the test bucket, and
#                                    export MLGATE_TEST_MINIO_ENDPOINT, MLGATE_TEST_VERSITYGW_ENDPOINT,
#                                    MLGATE_TEST_S3_ACCESS_KEY, MLGATE_TEST_S3_SECRET_KEY, MLGATE_TEST_S3_BUCKET,
#                                    and MLGATE_TEST_MINIO_BIN (the minio binary, for tests that run, kill
#                                    and restart a MinIO of their own)
#   .ci/s3-servers.sh stop           kill them (by pid file) and remove their data
#
# start writes only the export lines to stdout; progress and errors go to stderr, server logs to the
# state directory (.tools/s3-servers). Nothing but the two server processes outlives start.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.tools/bin
STATE=${MLGATE_S3_STATE:-$ROOT/.tools/s3-servers}

# MinIO upstream is unmaintained: keep this pin. It is AGPL, so it only ever runs as a process.
MINIO_PKG=github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
VERSITYGW_PKG=github.com/versity/versitygw/cmd/versitygw@v1.8.0

ACCESS_KEY=mlgatetest
SECRET_KEY=mlgatetest-secret-key
BUCKET=mlgate-test

log() { echo "s3-servers: $*" >&2; }

install() {
	mkdir -p "$BIN"
	# Each build takes minutes on a fresh machine; they run in parallel.
	local pids=()
	if [[ ! -x $BIN/minio ]]; then
		log "building minio (several minutes)"
		GOBIN=$BIN go install "$MINIO_PKG" >&2 &
		pids+=($!)
	fi
	if [[ ! -x $BIN/versitygw ]]; then
		log "building versitygw (several minutes)"
		GOBIN=$BIN go install "$VERSITYGW_PKG" >&2 &
		pids+=($!)
	fi
	local rc=0
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	return $rc
}

# free_port prints a port on 127.0.0.1 that nothing listens on (a race with other processes is
# handled by start's retries).
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

# wait_bucket creates the test bucket, retrying until the server answers S3 requests (the definitive
# readiness check) or the process died or 60 s passed.
wait_bucket() {
	local name=$1 pid=$2 endpoint=$3
	for _ in $(seq 300); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$name exited during startup; log: $STATE/$name.log"
			tail -n 20 "$STATE/$name.log" >&2 || true
			return 1
		fi
		if MLGATE_TEST_S3_ACCESS_KEY=$ACCESS_KEY MLGATE_TEST_S3_SECRET_KEY=$SECRET_KEY \
			"$BIN/mkbucket" "$endpoint" "$BUCKET" 2>"$STATE/$name.mkbucket.err"; then
			return 0
		fi
		sleep 0.2
	done
	log "$name did not become ready at $endpoint:"
	cat "$STATE/$name.mkbucket.err" >&2 || true
	return 1
}

# start_one NAME starts one server, retrying on another port if it fails, and prints its endpoint.
start_one() {
	local name=$1 port pid data
	data=$(mktemp -d "$STATE/$name-data.XXXXXX")
	for _ in 1 2 3; do
		port=$(free_port)
		case $name in
		minio)
			# Health first: MinIO listens before it can serve S3.
			MINIO_ROOT_USER=$ACCESS_KEY MINIO_ROOT_PASSWORD=$SECRET_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
				setsid "$BIN/minio" server --quiet --address "127.0.0.1:$port" "$data" >"$STATE/$name.log" 2>&1 </dev/null &
			;;
		versitygw)
			# --keep-alive: without it versitygw closes the connection after every response.
			ROOT_ACCESS_KEY=$ACCESS_KEY ROOT_SECRET_KEY=$SECRET_KEY \
				setsid "$BIN/versitygw" --port "127.0.0.1:$port" --keep-alive posix "$data" >"$STATE/$name.log" 2>&1 </dev/null &
			;;
		esac
		pid=$!
		echo "$pid" >"$STATE/$name.pid"
		if [[ $name == minio ]]; then
			for _ in $(seq 300); do
				curl -fsS -o /dev/null "http://127.0.0.1:$port/minio/health/live" 2>/dev/null && break
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.2
			done
		fi
		if wait_bucket "$name" "$pid" "http://127.0.0.1:$port"; then
			echo "http://127.0.0.1:$port"
			return 0
		fi
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	return 1
}

start() {
	for b in minio versitygw; do
		if [[ ! -x $BIN/$b ]]; then
			log "$BIN/$b is missing: run $0 install first"
			exit 1
		fi
	done
	stop 2>/dev/null || true
	mkdir -p "$STATE"
	go build -o "$BIN/mkbucket" ./backends/s3test/mkbucket >&2
	local minio vgw
	minio=$(start_one minio)
	vgw=$(start_one versitygw)
	log "minio at $minio, versitygw at $vgw, bucket $BUCKET"
	cat <<EOF
export MLGATE_TEST_MINIO_ENDPOINT=$minio
export MLGATE_TEST_VERSITYGW_ENDPOINT=$vgw
export MLGATE_TEST_S3_ACCESS_KEY=$ACCESS_KEY
export MLGATE_TEST_S3_SECRET_KEY=$SECRET_KEY
export MLGATE_TEST_S3_BUCKET=$BUCKET
export MLGATE_TEST_MINIO_BIN=$BIN/minio
EOF
}

stop() {
	[[ -d $STATE ]] || return 0
	for f in "$STATE"/*.pid; do
		[[ -e $f ]] || continue
		local pid
		pid=$(cat "$f")
		if kill "$pid" 2>/dev/null; then
			for _ in $(seq 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -9 "$pid" 2>/dev/null || true
		fi
		rm -f "$f"
	done
	rm -rf "$STATE"/*-data.*
}

case ${1:-} in
install) install ;;
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 install|start|stop" >&2
	exit 2
	;;
esac
