#!/usr/bin/env bash
# `make bench`: durable ingest throughput of npsd against a libmicrohttpd server that does
# nothing (the ceiling), both driven by the same wrk command and Lua script in the same run.
# Method and results: bench/README.md.
#
# Environment:
#   BENCH_SECONDS   length of each measured wrk run (default 15)
#   BENCH_WARMUP    length of the warm-up run before each measured run (default 2)
#   BENCH_THREADS   wrk threads (default 2)      BENCH_CONNECTIONS  wrk connections (default 64)
#   NPSD_BIN, NPSCTL_BIN   the binaries to measure (default build/npsd, build/npsctl)
#   BENCH_TMPDIR    where the fresh database goes (default $TMPDIR or /tmp; must be a real
#                   disk: on tmpfs an fsync costs nothing and the figure means nothing)
#
# Exit status: 0 when every 201 is a row in the database, 1 on a MISMATCH, 2 on a failure to
# build or start something.

# The Makefile runs `sh bench/run.sh`: carry on under bash whatever sh is.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_RUN=${BENCH_SECONDS:-15}
WARMUP=${BENCH_WARMUP:-2}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
NPSD=${NPSD_BIN:-build/npsd}
NPSCTL=${NPSCTL_BIN:-build/npsctl}
OUT=bench/out
LUA=bench/ingest.lua

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 2; }

# --- tools -------------------------------------------------------------------------------
need=""
for pkg in wrk sqlite3; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need="$need $pkg"
done
if [ -n "$need" ]; then
	say "installing:$need"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
[ -x "$NPSD" ] || die "$NPSD is missing: run make all first"
[ -x "$NPSCTL" ] || die "$NPSCTL is missing: run make all first"

say "building the no-op server"
mkdir -p build/bench "$OUT"
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror bench/noop_server.c \
	$(pkg-config --cflags --libs libmicrohttpd) -o build/bench/noop_server ||
	die "cannot build bench/noop_server.c"

# --- scratch space, cleanup --------------------------------------------------------------
TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/npsd-bench.XXXXXX")
NPSD_PID=""
NOOP_PID=""
stop_pid() { # stop_pid PID: SIGTERM, up to 20 s to go, then SIGKILL; returns its status
	local pid=$1 i rc=0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || rc=$?; return "$rc"; }
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "bench: pid $pid did not stop within 20 s of SIGTERM; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$NPSD_PID" ] && { stop_pid "$NPSD_PID" || true; }
	[ -n "$NOOP_PID" ] && { stop_pid "$NOOP_PID" || true; }
	[ -f "$TMP/npsd.log" ] && { cp "$TMP/npsd.log" "$OUT/npsd.log" 2>/dev/null || true; }
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fstype=$(stat -f -c %T "$TMP")
case "$fstype" in
tmpfs | ramfs) echo "bench: WARNING: $TMP is on $fstype: fsync is free there, so the" \
	"durable figure is not meaningful (set BENCH_TMPDIR to a directory on a disk)" >&2 ;;
esac

# run_wrk NAME URL SECONDS: runs wrk, keeps its output in $OUT/wrk-NAME.txt, echoes it to
# stderr and sets the BENCH_* figures from the script's BENCH line.
run_wrk() {
	local name=$1 url=$2 secs=$3 line
	NPSD_TOKEN=${TOKEN:-none} BENCH_TAG="$name-$$" \
		wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency -s "$LUA" "$url" \
		>"$OUT/wrk-$name.txt" 2>&1 || { cat "$OUT/wrk-$name.txt" >&2; die "wrk failed ($name)"; }
	sed 's/^/   /' "$OUT/wrk-$name.txt" >&2
	line=$(grep '^BENCH ' "$OUT/wrk-$name.txt") || die "no BENCH line in wrk's output ($name)"
	# BENCH requests=N seconds=S rps=N s201=N ok2xx=N non2xx=N sent=N unanswered=N p50_ms=...
	local kv
	for kv in ${line#BENCH }; do
		case "${kv%%=*}" in
		requests | seconds | rps | s201 | ok2xx | non2xx | sent | unanswered | p50_ms | p90_ms | p99_ms | errors)
			printf -v "B_${kv%%=*}" '%s' "${kv#*=}" ;;
		esac
	done
}

wait_for_port() { # wait_for_port FILE PID: up to 15 s for a port number in FILE
	local file=$1 pid=$2 i
	for i in $(seq 1 150); do
		if [ -s "$file" ] && grep -qE '^[0-9]+$' "$file"; then
			head -n1 "$file"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# --- npsd --------------------------------------------------------------------------------
CFG=$TMP/npsd.conf
cat >"$CFG" <<EOF
; written by bench/run.sh
[server]
listen = 127.0.0.1:0
threads = 0
[database]
path = $TMP/npsd.db
[callbacks]
hours = always
EOF

TOKEN=$("$NPSCTL" --db "$TMP/npsd.db" key create --role ingest --name bench) ||
	die "npsctl key create failed"
[ -n "$TOKEN" ] || die "npsctl printed no token"

NPSD_CMD=("$NPSD" --config "$CFG" --port-file "$TMP/port" --log-level warn)
say "starting: ${NPSD_CMD[*]}"
"${NPSD_CMD[@]}" 2>"$TMP/npsd.log" &
NPSD_PID=$!
PORT=$(wait_for_port "$TMP/port" "$NPSD_PID") || {
	cat "$TMP/npsd.log" >&2
	die "npsd did not start"
}
URL=http://127.0.0.1:$PORT/v1/surveys

say "npsd warm-up, ${WARMUP}s"
run_wrk npsd-warmup "$URL" "$WARMUP"
warm_201=$B_s201 warm_unanswered=$B_unanswered warm_non2xx=$B_non2xx

WRK_SHOWN="wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s --latency -s $LUA $URL"
say "npsd measured run: $WRK_SHOWN"
run_wrk npsd "$URL" "$SECONDS_RUN"
n_rps=$B_rps n_201=$B_s201 n_non2xx=$B_non2xx n_p50=$B_p50_ms n_p90=$B_p90_ms n_p99=$B_p99_ms
n_unanswered=$B_unanswered n_errors=$B_errors n_secs=$B_seconds

hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$NPSD_PID/status" 2>/dev/null || echo 0)
rss_mib=$(awk -v k="${hwm_kb:-0}" 'BEGIN { printf "%.1f", k / 1024 }')

say "stopping npsd (SIGTERM)"
npsd_rc=0
stop_pid "$NPSD_PID" || npsd_rc=$?
NPSD_PID=""
[ "$npsd_rc" -eq 0 ] || echo "bench: WARNING: npsd exited with status $npsd_rc after SIGTERM" >&2
if [ -s "$TMP/npsd.log" ]; then
	say "npsd's log (warn and above):"
	sed 's/^/   /' "$TMP/npsd.log" | tail -n 20 >&2
fi

rows=$(sqlite3 "$TMP/npsd.db" 'select count(*) from surveys') || die "cannot count the rows"
counted=$((warm_201 + n_201))
unanswered=$((warm_unanswered + n_unanswered))
extra=$((rows - counted))
if [ "$extra" -eq 0 ]; then
	verdict=OK
elif [ "$extra" -gt 0 ] && [ "$extra" -le "$unanswered" ]; then
	# Requests wrk wrote but stopped waiting for when its time was up: the server may well
	# have stored them. Not an acknowledged answer lost, so not a mismatch.
	verdict="OK  (+$extra stored whose answer wrk never read: in flight when it stopped)"
else
	verdict=MISMATCH
fi

# --- the ceiling -------------------------------------------------------------------------
say "starting the no-op server"
build/bench/noop_server 0 >"$TMP/noop.port" 2>"$TMP/noop.log" &
NOOP_PID=$!
NOOP_PORT=$(wait_for_port "$TMP/noop.port" "$NOOP_PID") || {
	cat "$TMP/noop.log" >&2
	die "the no-op server did not start"
}
NOOP_URL=http://127.0.0.1:$NOOP_PORT/v1/surveys
say "no-op warm-up, ${WARMUP}s"
run_wrk noop-warmup "$NOOP_URL" "$WARMUP"
say "no-op measured run: wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s --latency -s $LUA $NOOP_URL"
run_wrk noop "$NOOP_URL" "$SECONDS_RUN"
c_rps=$B_rps c_p50=$B_p50_ms c_p99=$B_p99_ms c_non2xx=$B_non2xx
stop_pid "$NOOP_PID" || true
NOOP_PID=""

ratio=$(awk -v a="$n_rps" -v b="$c_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
durable=$(awk -v n="$n_201" -v s="$n_secs" 'BEGIN { printf "%.0f", n / s }')

# --- summary -----------------------------------------------------------------------------
{
	echo "npsd bench $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
		" $(nproc) cores  wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s (+${WARMUP}s warm-up)"
	printf 'npsd ingest:   %s req/s  (201s: %s, non-2xx: %s)  p50 %s ms  p99 %s ms  peak RSS %s MiB\n' \
		"$n_rps" "$n_201" "$n_non2xx" "$n_p50" "$n_p99" "$rss_mib"
	printf 'noop ceiling:  %s req/s  (non-2xx: %s)  p50 %s ms  p99 %s ms\n' \
		"$c_rps" "$c_non2xx" "$c_p50" "$c_p99"
	printf 'ratio:         %s\n' "$ratio"
	printf 'rows in db:    %s  (201s counted: %s)  %s\n' "$rows" "$counted" "$verdict"
	printf 'details:       durable 201s/s %s, p90 %s ms, socket errors %s, warm-up 201s %s (non-2xx %s)\n' \
		"$durable" "$n_p90" "$n_errors" "$warm_201" "$warm_non2xx"
} >"$OUT/last.txt"
echo
cat "$OUT/last.txt"

case "$verdict" in
MISMATCH) echo "bench: MISMATCH: $rows rows for $counted acknowledged answers" >&2; exit 1 ;;
esac
exit 0
