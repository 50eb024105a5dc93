#!/usr/bin/env bash
# `make bench`: three measurements against the real daemon, each on a fresh database:
#   ingest    durable ingest throughput of npsd against a libmicrohttpd server that does
#             nothing (the ceiling), both driven by the same wrk command and Lua script (issue 5)
#   claim     POST /v1/callbacks/claim latency with 100,000 callbacks queued (issue 3)
#   webhooks  alert latency from POST of a survey to a local receiver getting it, with ingest
#             at 1,000 surveys/s, and the fan-out rate to several webhooks (issue 4)
# Method and results: bench/README.md.
#
# Environment:
#   BENCH_PHASES    which measurements to run (default "ingest claim webhooks")
#   BENCH_SECONDS   length of each measured wrk run (default 15)
#   BENCH_WARMUP    length of the warm-up run before each measured run (default 2)
#   BENCH_THREADS   wrk threads (default 2)      BENCH_CONNECTIONS  wrk connections (default 64)
#   BENCH_ROUNDS    ingest rounds, each a fresh npsd and no-op server; the median round by
#                   npsd's req/s is shown, every round's figures listed (default 3)
#   BENCH_CLAIM_QUEUE     callbacks queued before the claims (default 100000)
#   BENCH_CLAIM_REQUESTS  measured claims in each of the two claim runs (default 2000)
#   BENCH_CLAIM_THREADS   agents claiming at once in the concurrent run (default 4)
#   BENCH_ALERT_RATE      surveys/s posted during the alert-latency run (default 1000)
#   BENCH_ALERT_SECONDS   length of that run (default 10)
#   BENCH_FANOUT_WEBHOOKS webhooks in the fan-out run (default 5)
#   BENCH_FANOUT_SURVEYS  surveys posted in the fan-out run (default 5000)
#   BENCH_WAIT_TIMEOUT    how long to wait for every delivery to arrive (default 60 s)
#   NPSD_BIN, NPSCTL_BIN   the binaries to measure (default build/npsd, build/npsctl)
#   BENCH_TMPDIR    where the fresh databases go (default $TMPDIR or /tmp; must be a real
#                   disk: on tmpfs an fsync costs nothing and the figure means nothing)
#
# Exit status: 0 when every 201 is a row in the database and every acknowledged survey's
# alert reached the receiver, 1 on a MISMATCH or a LOST alert, 2 on a failure to build or
# start something. Figures that miss their targets are reported, not an error.

# The Makefile runs `sh bench/run.sh`: carry on under bash whatever sh is.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_RUN=${BENCH_SECONDS:-15}
WARMUP=${BENCH_WARMUP:-2}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
NPSD=${NPSD_BIN:-build/npsd}
NPSCTL=${NPSCTL_BIN:-build/npsctl}
OUT=bench/out
LUA=bench/ingest.lua
PHASES=" ${BENCH_PHASES:-ingest claim webhooks} "
CLAIM_QUEUE=${BENCH_CLAIM_QUEUE:-100000}
CLAIM_REQUESTS=${BENCH_CLAIM_REQUESTS:-2000}
CLAIM_THREADS=${BENCH_CLAIM_THREADS:-4}
CLAIM_WARMUP=20          # unmeasured claims per agent first (connection set-up, caches)
ALERT_RATE=${BENCH_ALERT_RATE:-1000}
ALERT_SECONDS=${BENCH_ALERT_SECONDS:-10}
FANOUT_WEBHOOKS=${BENCH_FANOUT_WEBHOOKS:-5}
FANOUT_SURVEYS=${BENCH_FANOUT_SURVEYS:-5000}
WAIT_TIMEOUT=${BENCH_WAIT_TIMEOUT:-60}
LOAD=build/bench/npsload

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 2; }
phase() { [[ $PHASES == *" $1 "* ]]; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer: $ROUNDS"
for p in $PHASES; do
	case $p in ingest | claim | webhooks) ;; *) die "unknown phase in BENCH_PHASES: $p" ;; esac
done

# --- tools -------------------------------------------------------------------------------
# shellcheck source=bench/common.sh
. bench/common.sh
install_missing wrk sqlite3
[ -x "$NPSD" ] || die "$NPSD is missing: run make all first"
[ -x "$NPSCTL" ] || die "$NPSCTL is missing: run make all first"

say "building the no-op server, the webhook receiver, the load client and the machine probe"
mkdir -p build/bench "$OUT"
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror bench/noop_server.c \
	$(pkg-config --cflags --libs libmicrohttpd) -o build/bench/noop_server ||
	die "cannot build bench/noop_server.c"
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror bench/hook_receiver.c \
	$(pkg-config --cflags --libs libmicrohttpd jansson) -lpthread -o build/bench/hook_receiver ||
	die "cannot build bench/hook_receiver.c"
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror bench/npsload.c \
	$(pkg-config --cflags --libs libcurl jansson) -lpthread -o "$LOAD" ||
	die "cannot build bench/npsload.c"
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror bench/machine.c -lpthread -o build/bench/machine ||
	die "cannot build bench/machine.c"

# --- scratch space, cleanup --------------------------------------------------------------
TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/npsd-bench.XXXXXX")
NPSD_PID=""
NOOP_PID=""
RECV_PID=""
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
	[ -n "$RECV_PID" ] && { stop_pid "$RECV_PID" || true; }
	local f
	for f in "$TMP"/npsd*.log "$TMP"/webhooks/hooks.txt "$TMP"/webhooks/sends.txt; do
		[ -f "$f" ] && { cp "$f" "$OUT/" 2>/dev/null || true; }
	done
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

# http_get PORT PATH: the body of a GET to 127.0.0.1:PORT, over bash's /dev/tcp (no curl
# needed); HTTP/1.0, so the server closes when it has answered.
http_get() {
	local port=$1 path=$2
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
	sed '1,/^\r$/d' <&3
	exec 3<&-
}

# thread_cpu PID: per thread name, summed over the threads of that name, one line each:
# "name ticks switches" (CPU time in clock ticks, user + system; context switches, voluntary
# and not: the times the thread slept and was woken, or was preempted).
thread_cpu() {
	local t
	for t in /proc/"$1"/task/*; do
		printf '%s %s %s\n' "$(cat "$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")" \
			"$(awk '/ctxt_switches/ { n += $2 } END { print n }' "$t/status")"
	done | awk '{ a[$1] += $2; c[$1] += $3 } END { for (k in a) print k, a[k], c[k] }' | sort
}

# cpu_ticks: the machine's busy and idle (+ iowait) time so far, clock ticks over all cores,
# and its context switches so far.
cpu_ticks() { awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; i = $5 + $6 } /^ctxt / { c = $2 } END { print b, i, c }' /proc/stat; }

# --- ingest: npsd against the no-op ceiling, in rounds --------------------------------------

# ingest_round N: a fresh npsd on a fresh database, its warm-up and measured wrk runs, then
# the no-op server's; writes the round's summary lines to $TMP/round-N.txt and appends
# "N npsd_rps noop_rps ratio verdict" to $TMP/rounds.txt.
ingest_round() {
	local round=$1
	local dir=$TMP/ingest-$round
	mkdir -p "$dir"
	CFG=$dir/npsd.conf
	bench_config "$dir" bench/run.sh

	TOKEN=$("$NPSCTL" --db "$dir/npsd.db" key create --role ingest --name bench) ||
		die "npsctl key create failed"
	[ -n "$TOKEN" ] || die "npsctl printed no token"

	NPSD_CMD=("$NPSD" --config "$CFG" --port-file "$dir/port" --log-level warn)
	say "starting: ${NPSD_CMD[*]}"
	"${NPSD_CMD[@]}" 2>"$TMP/npsd-ingest-$round.log" &
	NPSD_PID=$!
	PORT=$(wait_for_port "$dir/port" "$NPSD_PID") || {
		cat "$TMP/npsd-ingest-$round.log" >&2
		die "npsd did not start"
	}
	URL=http://127.0.0.1:$PORT/v1/surveys

	say "round $round of $ROUNDS: npsd warm-up, ${WARMUP}s"
	run_wrk npsd-warmup-$round "$URL" "$WARMUP"
	warm_201=$B_s201 warm_unanswered=$B_unanswered warm_non2xx=$B_non2xx

	WRK_SHOWN="wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s --latency -s $LUA $URL"
	say "npsd measured run: $WRK_SHOWN"
	http_get "$PORT" /metrics >"$dir/metrics-before.txt" || true
	thread_cpu "$NPSD_PID" >"$dir/cpu-before.txt"
	machine_before=$(cpu_ticks)
	run_wrk npsd-$round "$URL" "$SECONDS_RUN"
	n_rps=$B_rps n_201=$B_s201 n_non2xx=$B_non2xx n_p50=$B_p50_ms n_p90=$B_p90_ms n_p99=$B_p99_ms
	n_unanswered=$B_unanswered n_errors=$B_errors n_secs=$B_seconds
	machine_after=$(cpu_ticks)
	thread_cpu "$NPSD_PID" >"$dir/cpu-after.txt"
	http_get "$PORT" /metrics >"$dir/metrics-after.txt" || true
	cp "$dir/metrics-before.txt" "$OUT/metrics-before-$round.txt" 2>/dev/null || true
	cp "$dir/metrics-after.txt" "$OUT/metrics-after-$round.txt" 2>/dev/null || true

	# Where an answer's time went during the measured run (npsd's own stage timings from
	# /metrics, the change over the run), and what its threads cost per answer.
	stages=$(awk '
		match($0, /^npsd_(write|http)_stage_seconds_(sum|count)\{stage="[a-z]+"\} /) {
			split($0, p, "\"")
			kind = ($0 ~ /_sum\{/) ? "sum" : "count"
			v[FILENAME == ARGV[1] ? 0 : 1, kind, p[2]] = $NF
		}
		END {
			n = split("queue batch sync resume send", order, " ")
			for (i = 1; i <= n; i++) {
				s = order[i]
				c = v[1, "count", s] - v[0, "count", s]
				ms = c > 0 ? (v[1, "sum", s] - v[0, "sum", s]) / c * 1000 : 0
				total += ms
				out = out sprintf("%s%s %.2f", i > 1 ? ", " : "", s, ms)
			}
			printf "%s ms (sum %.2f ms)", out, total
		}' "$dir/metrics-before.txt" "$dir/metrics-after.txt" 2>/dev/null || echo "n/a")
	per_commit=$(awk '
		/^npsd_db_writes_total / { w[FILENAME == ARGV[1]] = $2 }
		/^npsd_db_commits_total / { c[FILENAME == ARGV[1]] = $2 }
		END { d = c[0] - c[1]; if (d > 0) printf "%.1f", (w[0] - w[1]) / d; else print "n/a" }' \
		"$dir/metrics-before.txt" "$dir/metrics-after.txt" 2>/dev/null || echo "n/a")
	cycle_ms=$(awk -v c="$CONNS" -v r="$n_rps" 'BEGIN { if (r > 0) printf "%.2f", c / r * 1000; else print "n/a" }')
	requests=$(awk -v r="$n_rps" -v s="$n_secs" 'BEGIN { printf "%.0f", r * s }')
	# npsd's CPU per answer by thread, the rest of the machine's (wrk, the kernel's share
	# outside npsd), the idle share, and the rate two never-idle cores would carry at these
	# costs: the CPU bound of this closed loop.
	cpu_line=$(join "$dir/cpu-before.txt" "$dir/cpu-after.txt" | awk -v n="$requests" -v hz="$(getconf CLK_TCK)" \
		-v m0="$machine_before" -v m1="$machine_after" -v cores="$(nproc)" '
		n > 0 { us = ($4 - $2) * 1e6 / hz / n; npsd += us; if (us >= 0.5) out = out sprintf(" %s %.0f", $1, us) }
		END {
			split(m0, a, " "); split(m1, b, " ")
			busy = (b[1] - a[1]) * 1e6 / hz; idle = (b[2] - a[2]) * 1e6 / hz
			rest = n > 0 ? busy / n - npsd : 0
			printf "npsd %.0f us per answer (%s), the rest of the machine (wrk, kernel) %.0f us; ", npsd, substr(out, 2), rest
			printf "idle %.0f%%; two busy cores at these costs: at most %.0f answers/s", \
				(busy + idle > 0 ? idle / (busy + idle) * 100 : 0), (npsd + rest > 0 ? cores * 1e6 / (npsd + rest) : 0)
		}')

	# Context switches per answer: npsd's by thread and the whole machine's. On a virtual
	# machine each one costs several microseconds (the MACHINE line's wakeup_us).
	switch_line=$(join "$dir/cpu-before.txt" "$dir/cpu-after.txt" | awk -v n="$requests" \
		-v m0="$machine_before" -v m1="$machine_after" '
		n > 0 { s = ($5 - $3) / n; npsd += s; if (s >= 0.005) out = out sprintf(" %s %.2f", $1, s) }
		END {
			split(m0, a, " "); split(m1, b, " ")
			printf "npsd %.2f per answer (%s), the whole machine %.2f", npsd, substr(out, 2), (n > 0 ? (b[3] - a[3]) / n : 0)
		}')

	hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$NPSD_PID/status" 2>/dev/null || echo 0)
	rss_mib=$(awk -v k="${hwm_kb:-0}" 'BEGIN { printf "%.1f", k / 1024 }')

	say "stopping npsd (SIGTERM)"
	npsd_rc=0
	stop_pid "$NPSD_PID" || npsd_rc=$?
	NPSD_PID=""
	[ "$npsd_rc" -eq 0 ] || echo "bench: WARNING: npsd exited with status $npsd_rc after SIGTERM" >&2
	if [ -s "$TMP/npsd-ingest-$round.log" ]; then
		say "npsd's log (warn and above):"
		sed 's/^/   /' "$TMP/npsd-ingest-$round.log" | tail -n 20 >&2
	fi

	rows=$(sqlite3 "$dir/npsd.db" 'select count(*) from surveys') || die "cannot count the rows"
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
	build/bench/noop_server 0 >"$dir/noop.port" 2>"$dir/noop.log" &
	NOOP_PID=$!
	NOOP_PORT=$(wait_for_port "$dir/noop.port" "$NOOP_PID") || {
		cat "$dir/noop.log" >&2
		die "the no-op server did not start"
	}
	NOOP_URL=http://127.0.0.1:$NOOP_PORT/v1/surveys
	say "no-op warm-up, ${WARMUP}s"
	run_wrk noop-warmup-$round "$NOOP_URL" "$WARMUP"
	say "no-op measured run: wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s --latency -s $LUA $NOOP_URL"
	run_wrk noop-$round "$NOOP_URL" "$SECONDS_RUN"
	c_rps=$B_rps c_p50=$B_p50_ms c_p99=$B_p99_ms c_non2xx=$B_non2xx
	stop_pid "$NOOP_PID" || true
	NOOP_PID=""

	ratio=$(awk -v a="$n_rps" -v b="$c_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
	durable=$(awk -v n="$n_201" -v s="$n_secs" 'BEGIN { printf "%.0f", n / s }')

	{
		printf 'npsd ingest:   %s req/s  (201s: %s, non-2xx: %s)  p50 %s ms  p99 %s ms  peak RSS %s MiB\n' \
			"$n_rps" "$n_201" "$n_non2xx" "$n_p50" "$n_p99" "$rss_mib"
		printf 'noop ceiling:  %s req/s  (non-2xx: %s)  p50 %s ms  p99 %s ms\n' \
			"$c_rps" "$c_non2xx" "$c_p50" "$c_p99"
		printf 'ratio:         %s\n' "$ratio"
		printf 'rows in db:    %s  (201s counted: %s)  %s\n' "$rows" "$counted" "$verdict"
		printf 'details:       durable 201s/s %s, p90 %s ms, socket errors %s, warm-up 201s %s (non-2xx %s)\n' \
			"$durable" "$n_p90" "$n_errors" "$warm_201" "$warm_non2xx"
		printf 'stages:        %s; a connection'"'"'s round trip %s ms (%s connections / req/s); %s answers per commit\n' \
			"$stages" "$cycle_ms" "$CONNS" "$per_commit"
		printf 'cpu:           %s\n' "$cpu_line"
		printf 'switches:      %s\n' "$switch_line"
	} >"$TMP/round-$round.txt"
	cp "$TMP/round-$round.txt" "$OUT/" 2>/dev/null || true
	printf '%s %s %s %s %s\n' "$round" "$n_rps" "$c_rps" "$ratio" "${verdict%% *}" >>"$TMP/rounds.txt"
}

if phase ingest; then
	say "machine probe: system call, thread wake-up, fdatasync in $TMP"
	machine_line=$(build/bench/machine "$TMP") || die "the machine probe failed"
	machine_line=$(printf '%s\n' "$machine_line" | awk '{
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "a system call %s us, a thread wake-up %s us, fdatasync after 4 KiB %s ms, after 128 KiB %s ms",
			v["syscall_us"], v["wakeup_us"], v["fdatasync_4k_ms"], v["fdatasync_128k_ms"] }')

	: >"$TMP/rounds.txt"
	for round in $(seq 1 "$ROUNDS"); do
		ingest_round "$round"
	done
	# The round shown is the median by npsd's req/s (the VM's run-to-run spread is wide: a
	# single pair of runs can land anywhere in it); every round's figures are listed.
	median_round=$(sort -k2,2n "$TMP/rounds.txt" | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2) { print $1 }')
	rounds_line=$(awk '
		{ npsd = npsd sep $2; noop = noop sep $3; ratio = ratio sep $4; sep = ", " }
		END { printf "npsd %s req/s; no-op %s req/s; ratio %s", npsd, noop, ratio }' "$TMP/rounds.txt")
	mismatched=$(awk '$5 == "MISMATCH" { print $1 }' "$TMP/rounds.txt" | tr '\n' ' ')
fi

# --- helpers for the claim and webhook phases ---------------------------------------------

# kv PREFIX LINE: for every key=value in LINE (a "WORD k=v k=v ..." line of npsload), sets
# the shell variable PREFIXkey to value.
kv() {
	local prefix=$1 pair
	for pair in ${2#* }; do
		case $pair in *=*) printf -v "$prefix${pair%%=*}" '%s' "${pair#*=}" ;; esac
	done
}

# load PREFIX NAME TIMEOUT_S ARGS...: runs the load client `npsload ARGS...` (killed after
# TIMEOUT_S), shows its output and sets PREFIXkey=value from its result line ("WORD k=v ...").
load() {
	local prefix=$1 name=$2 limit=$3 line
	shift 3
	timeout --foreground -k 5 "$limit" "$LOAD" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || {
		cat "$TMP/$name.out" "$TMP/$name.err" >&2
		die "npsload $1 failed or timed out ($name)"
	}
	sed 's/^/   /' "$TMP/$name.err" "$TMP/$name.out" >&2
	line=$(grep -E '^[A-Z]+ ' "$TMP/$name.out" | tail -n1) || die "npsload printed no result ($name)"
	kv "$prefix" "$line"
}

# start_npsd DIR [EXTRA_CONFIG]: a fresh npsd on DIR/npsd.db, as the ingest phase starts it,
# plus EXTRA_CONFIG lines; sets NPSD_PID and PORT. Its log goes to $TMP/npsd-NAME.log.
start_npsd() {
	local dir=$1 extra=${2:-} name
	name=$(basename "$dir")
	bench_config "$dir" "bench/run.sh ($name)" "$extra"
	say "starting: $NPSD --config $dir/npsd.conf --port-file $dir/port --log-level warn"
	"$NPSD" --config "$dir/npsd.conf" --port-file "$dir/port" --log-level warn 2>"$TMP/npsd-$name.log" &
	NPSD_PID=$!
	PORT=$(wait_for_port "$dir/port" "$NPSD_PID") || {
		cat "$TMP/npsd-$name.log" >&2
		die "npsd did not start ($name)"
	}
}

# stop_npsd NAME: peak RSS into RSS_MIB, SIGTERM, the tail of its log.
stop_npsd() {
	local name=$1 kb rc=0
	kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$NPSD_PID/status" 2>/dev/null || echo 0)
	RSS_MIB=$(awk -v k="${kb:-0}" 'BEGIN { printf "%.1f", k / 1024 }')
	say "stopping npsd (SIGTERM)"
	stop_pid "$NPSD_PID" || rc=$?
	NPSD_PID=""
	[ "$rc" -eq 0 ] || echo "bench: WARNING: npsd exited with status $rc after SIGTERM ($name)" >&2
	if [ -s "$TMP/npsd-$name.log" ]; then
		say "npsd's log (warn and above):"
		sed 's/^/   /' "$TMP/npsd-$name.log" | tail -n 20 >&2
	fi
}

new_key() { # new_key DB ROLE NAME: prints a new token
	local t
	t=$("$NPSCTL" --db "$1" key create --role "$2" --name "$3" 2>/dev/null) || die "npsctl key create failed"
	[ -n "$t" ] || die "npsctl printed no token"
	printf '%s\n' "$t"
}

cpu_s() { # cpu_s PID: user + system CPU seconds so far
	awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' \
		"/proc/$1/stat" 2>/dev/null || echo 0
}

target() { # target VALUE OP LIMIT: OK or MISSED
	awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
		ok = (op == "<") ? (v + 0 < l + 0) : (v + 0 >= l + 0)
		print ok ? "OK" : "MISSED" }'
}

# --- claim: p99 with 100,000 queued callbacks ---------------------------------------------
if phase claim; then
	D=$TMP/claim
	mkdir -p "$D"
	ING=$(new_key "$D/npsd.db" ingest bench-fill)
	AGENTS=()
	for i in $(seq 1 "$CLAIM_THREADS"); do
		AGENTS+=("$(new_key "$D/npsd.db" agent "bench-agent-$i")")
	done
	start_npsd "$D"
	BASE=http://127.0.0.1:$PORT

	say "claim: queueing $CLAIM_QUEUE callbacks (batches of 1000, 2 in flight)"
	load F_ claim-fill 600 fill "$BASE" "$ING" "queue-$$" "$CLAIM_QUEUE" 1000 2
	cq_depth=$(sqlite3 "$D/npsd.db" "select count(*) from callbacks where status = 'queued'" 2>/dev/null || echo '?')
	say "claim: queue depth $cq_depth"

	per=$((CLAIM_REQUESTS / CLAIM_THREADS))
	[ "$per" -ge 1 ] || per=1
	say "claim: 1 agent, $CLAIM_WARMUP + $CLAIM_REQUESTS claims one after the other"
	NPSLOAD_CLAIM_LOG=$OUT/claims-1.txt \
		load C1_ claim-seq 150 claim "$BASE" 120 "$CLAIM_REQUESTS" "$CLAIM_WARMUP" "${AGENTS[0]}"
	say "claim: $CLAIM_THREADS agents at once, $CLAIM_WARMUP + $per claims each"
	NPSLOAD_CLAIM_LOG=$OUT/claims-$CLAIM_THREADS.txt \
		load C4_ claim-conc 150 claim "$BASE" 120 "$per" "$CLAIM_WARMUP" "${AGENTS[@]}"
	cq_after=$(sqlite3 "$D/npsd.db" "select count(*) from callbacks where status = 'queued'" 2>/dev/null || echo '?')
	stop_npsd claim
	cq_rss=$RSS_MIB
fi

# --- webhooks: alert latency at 1,000 surveys/s, then fan-out -----------------------------
alerts_lost=0
if phase webhooks; then
	D=$TMP/webhooks
	mkdir -p "$D"
	ING=$(new_key "$D/npsd.db" ingest bench-stream)
	MGR=$(new_key "$D/npsd.db" manager bench-manager)
	start_npsd "$D" "[webhooks]
allow_private_targets = true"
	BASE=http://127.0.0.1:$PORT

	say "starting the webhook receiver"
	build/bench/hook_receiver 0 "$D/hooks.txt" >"$D/receiver.port" 2>"$D/receiver.log" &
	RECV_PID=$!
	RPORT=$(wait_for_port "$D/receiver.port" "$RECV_PID") || {
		cat "$D/receiver.log" >&2
		die "the webhook receiver did not start"
	}
	RBASE=http://127.0.0.1:$RPORT

	alert_wh=$(timeout 30 "$LOAD" webhook "$BASE" "$MGR" "$RBASE/hook/alert") ||
		die "cannot create the alert webhook"
	say "alert latency: $ALERT_RATE surveys/s for ${ALERT_SECONDS}s, webhook $alert_wh -> $RBASE/hook/alert"
	load S_ alert-stream $((ALERT_SECONDS + 60)) stream "$BASE" "$ING" "alert-$$" \
		"$ALERT_RATE" "$ALERT_SECONDS" "$D/sends.txt"
	say "alert latency: waiting for $S_s201 alerts (up to ${WAIT_TIMEOUT}s)"
	load AW_ alert-wait $((WAIT_TIMEOUT + 30)) wait "$RBASE" /hook/alert "$S_s201" "$WAIT_TIMEOUT"
	timeout 30 "$LOAD" webhook-off "$BASE" "$MGR" "$alert_wh" ||
		echo "bench: WARNING: cannot switch the alert webhook off; it keeps receiving during the fan-out" >&2

	say "fan-out: $FANOUT_WEBHOOKS webhooks, $FANOUT_SURVEYS surveys in batches of 1000"
	for i in $(seq 1 "$FANOUT_WEBHOOKS"); do
		timeout 30 "$LOAD" webhook "$BASE" "$MGR" "$RBASE/hook/fan$i" >/dev/null ||
			die "cannot create fan-out webhook $i"
	done
	cpu0_npsd=$(cpu_s "$NPSD_PID") cpu0_recv=$(cpu_s "$RECV_PID") t0=$(date +%s.%N)
	load FF_ fanout-fill 300 fill "$BASE" "$ING" "fan-$$" "$FANOUT_SURVEYS" 1000 2
	fan_expected=$((FF_s201 * FANOUT_WEBHOOKS))
	say "fan-out: waiting for $fan_expected deliveries (up to ${WAIT_TIMEOUT}s)"
	load FW_ fanout-wait $((WAIT_TIMEOUT + 30)) wait "$RBASE" /hook/fan "$fan_expected" "$WAIT_TIMEOUT"
	cpu1_npsd=$(cpu_s "$NPSD_PID") cpu1_recv=$(cpu_s "$RECV_PID") t1=$(date +%s.%N)
	fan_cpu=$(awk -v a="$cpu0_npsd" -v b="$cpu1_npsd" -v c="$cpu0_recv" -v d="$cpu1_recv" \
		-v t0="$t0" -v t1="$t1" 'BEGIN { printf "npsd %.1f s, receiver %.1f s CPU in %.1f s", b - a, d - c, t1 - t0 }')

	say "stopping the webhook receiver (SIGTERM)"
	recv_rc=0
	stop_pid "$RECV_PID" || recv_rc=$?
	RECV_PID=""
	[ "$recv_rc" -eq 0 ] || echo "bench: WARNING: the receiver exited with status $recv_rc" >&2
	stop_npsd webhooks
	wh_rss=$RSS_MIB

	load A_ alert-report 60 alert-report "$D/sends.txt" "$D/hooks.txt" /hook/alert
	load FO_ fanout-report 60 fanout-report "$D/hooks.txt" /hook/fan "$FF_start_ns" "$fan_expected"
	wh_db=$(sqlite3 -separator ' ' "$D/npsd.db" \
		"select group_concat(status || ' ' || n, ', ') from (select status, count(*) n from deliveries group by status)" \
		2>/dev/null || echo '?')
	wh_retried=$(sqlite3 "$D/npsd.db" "select count(*) from deliveries where attempts > 1" 2>/dev/null || echo '?')
	[ "$A_missing" -eq 0 ] || alerts_lost=1
	[ "$FO_missing" -eq 0 ] || alerts_lost=1
fi

# --- summary -----------------------------------------------------------------------------
{
	if phase ingest; then
		echo "npsd bench $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
			" $(nproc) cores  wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s (+${WARMUP}s warm-up), $ROUNDS rounds"
		cat "$TMP/round-$median_round.txt"
		printf 'rounds:        %s (%s rounds, each a fresh npsd and no-op server; the lines above are round %s, the median by npsd req/s)\n' \
			"$rounds_line" "$ROUNDS" "$median_round"
		printf 'machine:       %s\n' "$machine_line"
	else
		echo "npsd bench $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
			" $(nproc) cores  phases:$PHASES"
	fi
	if phase claim; then
		printf 'claim:         p99 %s ms  p50 %s ms  max %s ms  (1 agent, %s claims one after the other, queue depth %s)  target p99 < 5 ms: %s\n' \
			"$C1_p99_ms" "$C1_p50_ms" "$C1_max_ms" "$C1_requests" "$cq_depth" "$(target "$C1_p99_ms" '<' 5)"
		printf 'claim x%s:      p99 %s ms  p50 %s ms  max %s ms  (%s agents at once, %s claims, %s claims/s)  target p99 < 5 ms: %s\n' \
			"$CLAIM_THREADS" "$C4_p99_ms" "$C4_p50_ms" "$C4_max_ms" "$C4_threads" "$C4_requests" "$C4_rps" \
			"$(target "$C4_p99_ms" '<' 5)"
		printf 'claim details: answers 1 agent 200:%s 204:%s 5xx:%s other:%s failed:%s, %s agents 200:%s 204:%s 5xx:%s other:%s failed:%s; queue %s -> %s; filled %s callbacks in %s s (%s surveys/s, item errors %s, batch errors %s); peak RSS %s MiB\n' \
			"$C1_s200" "$C1_s204" "$C1_s5xx" "$C1_other" "$C1_failed" "$CLAIM_THREADS" "$C4_s200" "$C4_s204" \
			"$C4_s5xx" "$C4_other" "$C4_failed" "$cq_depth" "$cq_after" "$F_callbacks" "$F_seconds" "$F_rate" \
			"$F_other" "$F_http_errors" "$cq_rss"
	fi
	if phase webhooks; then
		printf 'alert latency: p99 %s ms  p50 %s ms  max %s ms  (%s surveys/s for %s s: %s alerts for %s 201s, missing %s, resent %s)  target p99 < 100 ms: %s\n' \
			"$A_p99_ms" "$A_p50_ms" "$A_max_ms" "$ALERT_RATE" "$ALERT_SECONDS" "$A_matched" "$A_sent201" \
			"$A_missing" "$A_duplicates" "$(target "$A_p99_ms" '<' 100)"
		printf 'fan-out:       %s deliveries/s  (%s webhooks x %s surveys = %s deliveries in %s s, first to last arrival; %s/s from the first POST; missing %s)  target 5000/s: %s\n' \
			"$FO_recv_rate" "$FANOUT_WEBHOOKS" "$FF_s201" "$FO_unique" "$FO_recv_seconds" "$FO_e2e_rate" \
			"$FO_missing" "$(target "$FO_recv_rate" '>=' 5000)"
		printf 'hook details:  stream %s sent, 201s %s, non-2xx %s, errors %s, answer p99 %s ms, sends at most %s ms late; alert after the 201 p50 %s ms p99 %s ms; deliveries in db: %s, retried %s; fan-out posts %s s, %s; peak RSS %s MiB%s\n' \
			"$S_sent" "$S_s201" "$S_non2xx" "$S_errors" "$S_p99_ms" "$S_max_late_ms" "$A_after201_p50_ms" \
			"$A_after201_p99_ms" "$wh_db" "$wh_retried" \
			"$FF_seconds" "$fan_cpu" "$wh_rss" \
			"$([ "$alerts_lost" -eq 0 ] || echo '  LOST: alerts that did not arrive within the wait')"
	fi
} >"$OUT/last.txt"
echo
cat "$OUT/last.txt"

rc=0
if phase ingest && [ -n "$mismatched" ]; then
	echo "bench: MISMATCH in round(s) $mismatched: fewer rows than acknowledged answers (see rows in db in bench/out/round-N.txt)" >&2
	rc=1
fi
if [ "$alerts_lost" -ne 0 ]; then
	echo "bench: LOST: alerts missing after ${WAIT_TIMEOUT}s: latency run $A_missing, fan-out $FO_missing" >&2
	rc=1
fi
exit "$rc"
