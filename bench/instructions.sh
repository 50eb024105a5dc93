#!/usr/bin/env bash
# `make bench-instructions`: the instructions npsd runs per answer stored, by thread, counted
# by callgrind while wrk posts single answers (bench/ingest.lua) to a fresh npsd.
#
# On the bench VM two runs of the same binary differ by up to 30% in answers/s, more than
# most changes to the code; an instruction count moves by 1-2% between runs of the
# same binary, so it tells an A/B of a change to the handler or the writer apart. It says
# nothing of cache misses, system calls or waiting (the kernel's work is not counted), and
# under callgrind's single-threaded emulation a commit carries fewer answers than at full
# speed, so the writer's share of the commit per answer is larger here than in `make bench`.
#
#   BENCH_SECONDS   how long wrk posts (default 15; ~4,000 answers under callgrind)
#   NPSD_BIN, NPSCTL_BIN   the binaries to measure (default build/npsd, build/npsctl)
#   BENCH_TMPDIR    where the database goes (default $TMPDIR or /tmp)

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail
cd "$(dirname "$0")/.."

NPSD=${NPSD_BIN:-build/npsd}
NPSCTL=${NPSCTL_BIN:-build/npsctl}
SECS=${BENCH_SECONDS:-15}

die() { echo "bench/instructions.sh: $*" >&2; exit 2; }
say() { printf '== %s\n' "$*" >&2; }
# shellcheck source=bench/common.sh
. bench/common.sh
install_missing valgrind wrk sqlite3

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/npsd-instr.XXXXXX")
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

bench_config "$TMP" bench/instructions.sh
TOKEN=$("$NPSCTL" --db "$TMP/npsd.db" key create --role ingest --name bench 2>/dev/null) ||
	die "npsctl key create failed"
[ -n "$TOKEN" ] || die "npsctl printed no token"
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$TMP/cg.%p" \
	"$NPSD" --config "$TMP/npsd.conf" --port-file "$TMP/port" --log-level warn 2>"$TMP/npsd.log" &
PID=$!
# callgrind starts npsd slowly: up to 30 s.
PORT=$(wait_for_port "$TMP/port" "$PID" 300) || { cat "$TMP/npsd.log" >&2; die "npsd did not start under callgrind"; }
NPSD_TOKEN=$TOKEN BENCH_TAG=instr$$ wrk -t1 -c16 -d"${SECS}s" -s bench/ingest.lua \
	"http://127.0.0.1:$PORT/v1/surveys" >"$TMP/wrk.txt" 2>&1 || die "wrk failed"
kill "$PID"
wait "$PID" 2>/dev/null || true
PID=
ANSWERS=$(sqlite3 "$TMP/npsd.db" 'select count(*) from surveys')
[ "$ANSWERS" -gt 0 ] || die "no answer was stored"

# callgrind numbers threads, not names: each is known by the function it runs (named in an
# fn= or cfn= line: callgrind names a function where it first appears, either way).
declare -A total=()
for f in "$TMP"/cg.*-*; do
	n=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
	[ -n "$n" ] || die "no total in $f"
	name=other
	if grep -q 'fn=.*writer_main' "$f"; then name=writer
	elif grep -q 'fn=.*sync_main' "$f"; then name=sync
	elif grep -q 'fn=.*on_request' "$f"; then name=http
	fi
	total[$name]=$(( ${total[$name]:-0} + n ))
done
# The other threads' count is mostly start-up and stop (migrations, loading libraries),
# which is not per answer: shown, not added.
path_total=0
line=""
for name in http writer sync; do
	n=${total[$name]:-0}
	path_total=$((path_total + n))
	line+="$(printf '%s %d, ' "$name" $((n / ANSWERS)))"
done
built=$NPSD
[ -z "${NPSD_BIN:-}" ] && built+=" at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "instructions per answer: ${line}sum $((path_total / ANSWERS)); other threads $(( ${total[other]:-0} / ANSWERS ))" \
	"($ANSWERS answers; $built)"
