#!/usr/bin/env bash
# kv benchmark: a 3-node ddialab kv cluster (sync and async replication) against a 3-member etcd 3.4
# cluster, on 127.0.0.1, on this machine, in one run, with the same wrk load. See docs/bench.md.
#
# usage: bench/kv/run.sh [path/to/ddialab]        (make bench runs: bench/kv/run.sh build/ddialab)
#
# Environment (all optional):
#   BENCH_DURATION=10          seconds per wrk pass
#   BENCH_SYSTEMS="ddialab-raft ddialab-sync ddialab-async etcd"   which systems to run, in this order
#                              (raft: elections, majority commits; sync/async: the static-leader lab)
#   BENCH_CONNS="1 16 64"      connection counts (wrk threads: 1 for 1 connection, else 2)
#   BENCH_READY_DEADLINE=30    seconds a cluster may take to become ready before it is skipped
#   BENCH_SETTLE=1             seconds of quiet between passes (not used for readiness)
#   BENCH_RESULTS_DIR=bench/results   where kv-<timestamp>.md and .json go
#   BENCH_KEEP=1               keep the temporary directory (data dirs, node logs, wrk output)
#
# Exit status: 0 when every requested system ran every pass (the TARGET line may still say FAIL);
# 1 when a system was skipped or a pass produced no result; 2 on a usage error; 130 on Ctrl-C.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KVB=("python3" "$HERE/kvbench.py")
LUA="$HERE/kv.lua"

BIN=${1:-$ROOT/build/ddialab}
DURATION=${BENCH_DURATION:-10}
SYSTEMS=${BENCH_SYSTEMS:-ddialab-raft ddialab-sync ddialab-async etcd}
CONNS=${BENCH_CONNS:-1 16 64}
READY_DEADLINE=${BENCH_READY_DEADLINE:-30}
SETTLE=${BENCH_SETTLE:-1}
RESULTS=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
GET_KEYS=1000
VALUE_BYTES=256
STOP_DEADLINE=10

case "$DURATION" in '' | *[!0-9]*) echo "run.sh: BENCH_DURATION must be whole seconds" >&2 && exit 2 ;; esac
for tool in wrk python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed (scripts/deps.sh bench)" >&2 && exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ddialab-bench-kv.XXXXXX")
META="$WORK/meta"
ROWS="$WORK/rows.jsonl"
mkdir -p "$META/skipped"
: >"$ROWS"

PIDS=()     # every server process this script started and has not reaped yet, in stopping order
WRK_PID=""  # the wrk pass in progress
BROKE=0     # set when a system is skipped or a pass fails
PASS_NO=0

say() { printf '%s\n' "$*"; }

# alive PID: the process exists and is not a zombie (our children stay zombies until reaped).
alive() {
    local st
    st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# stop_pids PID...: stop them one at a time, in order: TERM, wait for the exit (deadline, then KILL), reap.
# One at a time and leader last, because an etcd leader that gets TERM hands leadership to a peer first and
# waits 7 s for that if the peer is exiting at the same moment.
stop_pids() {
    local p end
    for p in "$@"; do
        kill -TERM "$p" 2>/dev/null
        end=$((SECONDS + STOP_DEADLINE))
        while alive "$p" && [ $SECONDS -lt $end ]; do sleep 0.02; done
        if alive "$p"; then
            say "  process $p ignored TERM for ${STOP_DEADLINE}s; sending KILL"
            kill -KILL "$p" 2>/dev/null
        fi
        wait "$p" 2>/dev/null
        forget_pid "$p"
    done
}

# leader_last LEADER_URL: reorder the caller's pids/urls arrays and PIDS so the leader's PID is stopped last.
leader_last() {
    local i lp=""
    for i in "${!urls[@]}"; do [ "${urls[$i]}" = "$1" ] && lp=${pids[$i]}; done
    [ -n "$lp" ] || return 0
    forget_pid "$lp"
    PIDS+=("$lp")
    local keep=()
    for i in "${pids[@]}"; do [ "$i" = "$lp" ] || keep+=("$i"); done
    pids=("${keep[@]}" "$lp")
}

# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$WRK_PID" ]; then
        kill -TERM "$WRK_PID" 2>/dev/null
        wait "$WRK_PID" 2>/dev/null
    fi
    if [ ${#PIDS[@]} -gt 0 ]; then
        say "cleanup: stopping ${PIDS[*]}"
        stop_pids "${PIDS[@]}"
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# top_cpu: the busiest processes over one second (top's second sample; the first is since boot).
top_cpu() {
    top -b -n 2 -d 1 -w 160 -o %CPU 2>/dev/null |
        awk '/^top -/ { n++ } n == 2 && /^ *PID/ { hdr = 1 } n == 2 && hdr && shown < 9 { print; shown++ }'
}

log_machine() {
    local when=$1 up top
    up=$(uptime)
    top=$(top_cpu)
    printf '%s\n' "$up" >"$META/uptime_$when"
    printf '%s\n' "$top" >"$META/top_$when"
    say "machine load at $when: $up"
    say "$top" | sed 's/^/    /'
}

skip_system() {
    local sys=$1 why=$2 dir=$3 f
    say "SKIPPED $sys: $why"
    printf '%s\n' "$why" >"$META/skipped/$sys"
    BROKE=1
    for f in "$dir"/*.log; do
        [ -f "$f" ] || continue
        say "  --- last lines of $(basename "$f")"
        tail -n 15 "$f" | sed 's/^/  | /'
    done
}

# run_pass SYSTEM TARGET URL OP CONNS: one wrk pass; appends one row to $ROWS and prints one progress line.
run_pass() {
    local sys=$1 target=$2 url=$3 op=$4 c=$5 t=2 out wl rc
    [ "$c" -eq 1 ] && t=1
    PASS_NO=$((PASS_NO + 1))
    out="$WORK/pass-$PASS_NO.json"
    wl=$(tr '[:lower:]' '[:upper:]' <<<"$op")
    BENCH_TARGET=$target BENCH_OP=$op BENCH_THREAD_BASE=$((PASS_NO * 100)) BENCH_GET_KEYS=$GET_KEYS \
        BENCH_VALUE_BYTES=$VALUE_BYTES BENCH_OUT=$out \
        wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout 5s -s "$LUA" "$url" >"$WORK/pass-$PASS_NO.txt" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID"
    rc=$?
    WRK_PID=""
    if [ $rc -ne 0 ]; then
        BROKE=1
        say "  wrk exited with $rc: $(tail -n 3 "$WORK/pass-$PASS_NO.txt" | tr '\n' ' ')"
    fi
    [ -s "$out" ] || BROKE=1
    # The row goes to $ROWS, the progress line (stderr) to our stdout.
    { "${KVB[@]}" row --system "$sys" --workload "$wl" --conns "$c" --threads "$t" --loadavg "$(loadavg)" \
        --note "$([ $rc -ne 0 ] && echo "wrk exited with $rc")" "$out" >>"$ROWS"; } 2>&1
    sleep "$SETTLE"
}

# cluster_alive: every PID in the caller's pids array is still running (says which one is not).
cluster_alive() {
    local p
    for p in "${pids[@]}"; do
        alive "$p" || {
            say "  process $p of this cluster has exited"
            return 1
        }
    done
}

# run_loads SYSTEM TARGET URL: smoke check, PUT passes, preload, GET passes. Returns 1 when a check fails
# or a node dies, so the caller skips the rest of this system.
run_loads() {
    local sys=$1 target=$2 url=$3 c tids=()
    "${KVB[@]}" smoke --target "$target" "$url" 2>&1 || return 1
    for c in $CONNS; do
        run_pass "$sys" "$target" "$url" put "$c"
        tids+=($((PASS_NO * 100 + 1)))
        cluster_alive || return 1
    done
    "${KVB[@]}" check-keys --target "$target" "$url" "${tids[@]}" 2>&1 || return 1
    if [ "$target" = etcd ]; then
        "${KVB[@]}" count-etcd --rows "$ROWS" "$url" 2>&1 || return 1
    fi
    say "  preloading $GET_KEYS keys of $VALUE_BYTES bytes"
    "${KVB[@]}" preload --target "$target" --keys "$GET_KEYS" --value-bytes "$VALUE_BYTES" "$url" 2>&1 || return 1
    for c in $CONNS; do
        run_pass "$sys" "$target" "$url" get "$c"
        cluster_alive || return 1
    done
}

# bench_ddialab SYSTEM MODE ELECTIONS: start 3 nodes with --replication MODE and --elections or
# --no-elections, wait, run the loads, stop.
bench_ddialab() {
    local sys=$1 mode=$2 elections=$3 dir="$WORK/$1" ports i peers="" urls=() pids=() leader
    mkdir -p "$dir"
    if [ ! -x "$BIN" ]; then
        skip_system "$sys" "ddialab binary $BIN not found or not executable (make build)" "$dir"
        return
    fi
    mapfile -t ports < <("${KVB[@]}" ports 6)
    for i in 1 2 3; do peers+="${peers:+,}$i=127.0.0.1:${ports[$((2 * i - 1))]}"; done
    say "== $sys: 3 ddialab kv nodes, --replication $mode --fsync batch --$elections (data under $dir)"
    for i in 1 2 3; do
        mkdir -p "$dir/n$i"
        "$BIN" kv --node "$i" --http "127.0.0.1:${ports[$((2 * i - 2))]}" --peer "127.0.0.1:${ports[$((2 * i - 1))]}" \
            --peers "$peers" --data-dir "$dir/n$i" --replication "$mode" --fsync batch "--$elections" \
            >"$dir/n$i.log" 2>&1 &
        pids+=($!)
        PIDS+=($!)
        urls+=("http://127.0.0.1:${ports[$((2 * i - 2))]}")
    done
    if ! leader=$("${KVB[@]}" wait-ddialab --deadline "$READY_DEADLINE" --pids "$(
        IFS=,
        echo "${pids[*]}"
    )" "${urls[@]}" 2>"$dir/wait.err"); then
        skip_system "$sys" "cluster did not become ready: $(tail -n 1 "$dir/wait.err")" "$dir"
    else
        say "  ready; leader $leader"
        leader_last "$leader"
        run_loads "$sys" ddialab "$leader" ||
            skip_system "$sys" "a check against the running cluster failed (see above)" "$dir"
    fi
    local t0=$SECONDS
    stop_pids "${pids[@]}"
    say "  stopped in $((SECONDS - t0))s"
    rm -rf "$dir"
}

# bench_etcd: start 3 etcd members with default settings (fsync on), wait, run the loads, stop.
bench_etcd() {
    local sys=etcd dir="$WORK/etcd" ports i cluster="" urls=() pids=() leader
    mkdir -p "$dir"
    if ! command -v etcd >/dev/null; then
        skip_system "$sys" "etcd is not installed (scripts/deps.sh bench)" "$dir"
        return
    fi
    mapfile -t ports < <("${KVB[@]}" ports 6)
    for i in 1 2 3; do cluster+="${cluster:+,}e$i=http://127.0.0.1:${ports[$((2 * i - 1))]}"; done
    say "== etcd: 3 members, defaults (data under $dir)"
    for i in 1 2 3; do
        local cu="http://127.0.0.1:${ports[$((2 * i - 2))]}" pu="http://127.0.0.1:${ports[$((2 * i - 1))]}"
        etcd --name "e$i" --data-dir "$dir/data$i" \
            --listen-client-urls "$cu" --advertise-client-urls "$cu" \
            --listen-peer-urls "$pu" --initial-advertise-peer-urls "$pu" \
            --initial-cluster "$cluster" --initial-cluster-token "ddialab-bench-$$" --initial-cluster-state new \
            >"$dir/e$i.log" 2>&1 &
        pids+=($!)
        PIDS+=($!)
        urls+=("$cu")
    done
    if ! leader=$("${KVB[@]}" wait-etcd --deadline "$READY_DEADLINE" --pids "$(
        IFS=,
        echo "${pids[*]}"
    )" "${urls[@]}" 2>"$dir/wait.err"); then
        skip_system "$sys" "cluster did not become ready: $(tail -n 1 "$dir/wait.err")" "$dir"
    else
        say "  ready; leader $leader"
        leader_last "$leader"
        run_loads "$sys" etcd "$leader" ||
            skip_system "$sys" "a check against the running cluster failed (see above)" "$dir"
    fi
    local t0=$SECONDS
    stop_pids "${pids[@]}"
    say "  stopped in $((SECONDS - t0))s"
    rm -rf "$dir"
}

# ------------------------------------------------------------------ main

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
printf '%s\n' "$STAMP" >"$META/timestamp"
hostname >"$META/host"
nproc >"$META/nproc"
printf '%s\n' "$DURATION" >"$META/duration_s"
printf '%s\n' "$CONNS" >"$META/conns"
printf '%s\n' "$SYSTEMS" >"$META/systems"
(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }') >"$META/wrk"
(etcd --version 2>/dev/null | head -n 1 | awk '{ print $NF }') >"$META/etcd"
echo "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) ($BIN)" >"$META/ddialab"

say "kv benchmark $STAMP: systems [$SYSTEMS], connections [$CONNS], ${DURATION}s per pass, value ${VALUE_BYTES} B"
log_machine start

for sys in $SYSTEMS; do
    case "$sys" in
    ddialab-raft) bench_ddialab "$sys" majority elections ;;
    ddialab-sync) bench_ddialab "$sys" sync no-elections ;;
    ddialab-async) bench_ddialab "$sys" async no-elections ;;
    etcd) bench_etcd ;;
    *)
        say "run.sh: unknown system '$sys' (known: ddialab-raft ddialab-sync ddialab-async etcd)" >&2
        exit 2
        ;;
    esac
done

log_machine end
mkdir -p "$RESULTS"
"${KVB[@]}" report --rows "$ROWS" --meta-dir "$META" --md "$RESULTS/kv-$STAMP.md" --json "$RESULTS/kv-$STAMP.json" ||
    BROKE=1
[ $BROKE -eq 0 ] || say "run.sh: something did not run (see SKIPPED / FAILED above); exiting 1"
exit $BROKE
