#!/usr/bin/env bash
# bench/agents/captures.sh: captures created through netwatchd's API and started on simulated
# agents; the two dispatch targets of issue 3 and a smoke check.
#
# Usage: bench/agents/captures.sh [BUILD_DIR] latency|scale|smoke
#   latency  1,000 agents connected; 2,000 creates at 200/s from 8 clients (steady), then 2,000
#            as fast as 16 clients go (burst); per create the time from sending its PUT to the
#            simulated agent decoding its start. Target: p99 <= 10 ms (each phase).
#   scale    10,000 agents; 10,000 creates (one per agent) as fast as 32 clients go; time from
#            the first PUT to the last capture Running (the server's reply to the last ack), then
#            queryStatus of all 10,000 must say Running. Target: <= 10 s.
#   smoke    20 agents, 20 creates, all Running, then all stopped (ctest bench.agents_smoke).
#   BUILD_DIR defaults to <repo>/build; it must hold server/netwatchd, bench/bench_seed_agents
#   and bench/bench_agent_captures.
#
# Environment (all optional): BENCH_AGENTS, BENCH_CREATES (per phase), BENCH_RATE (steady PUTs/s),
#   BENCH_CLIENTS (burst/scale clients) override the mode's numbers; BENCH_PHASES="NAME:CREATES:
#   RATE:CLIENTS ..." replaces the mode's phases (RATE 0: a burst); BENCH_KEEP=1 keeps the work
#   dir (database, netwatchd log, program output); TMPDIR is where it is made.
#
# Exit status: 0 every capture was created, started and Running (whatever the PASS/FAIL timing
# lines say: that part is a report); 1 not every capture ran, or something failed to run (a binary
# missing, seeding failed, netwatchd died, descriptors); 2 usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

usage()
{
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

die()
{
    echo "captures.sh: $*" >&2
    exit 1
}

case ${1:-} in -h | --help | "") usage ;; esac
if [ $# -eq 2 ]; then
    BUILD=$1 MODE=$2
elif [ $# -eq 1 ]; then
    BUILD=$REPO/build MODE=$1
else
    usage
fi

EXTRA=()
case $MODE in
latency)
    N=${BENCH_AGENTS:-1000} C=${BENCH_CREATES:-2000}
    PHASES=(--phase "steady:$C:${BENCH_RATE:-200}:8" --phase "burst:$C:0:${BENCH_CLIENTS:-16}")
    EXTRA=(--p99-target-ms 10)
    ;;
scale)
    N=${BENCH_AGENTS:-10000} C=${BENCH_CREATES:-$N}
    PHASES=(--phase "all:$C:0:${BENCH_CLIENTS:-32}")
    EXTRA=(--running-target-s 10)
    ;;
smoke)
    N=${BENCH_AGENTS:-20} C=${BENCH_CREATES:-20}
    PHASES=(--phase "smoke:$C:0:${BENCH_CLIENTS:-4}")
    EXTRA=(--stop --phase-timeout 20)
    ;;
*) usage ;;
esac
if [ -n "${BENCH_PHASES:-}" ]; then
    PHASES=()
    for ph in $BENCH_PHASES; do
        PHASES+=(--phase "$ph")
    done
fi
for v in "$N" "$C"; do
    [[ $v =~ ^[1-9][0-9]{0,5}$ ]] || { echo "captures.sh: $v: want a count" >&2; exit 2; }
done

NWD=$BUILD/server/netwatchd
SEED=$BUILD/bench/bench_seed_agents
CAP=$BUILD/bench/bench_agent_captures
for b in "$NWD" "$SEED" "$CAP"; do
    [ -x "$b" ] || die "$b missing: cmake --build $BUILD --target netwatchd bench_seed_agents bench_agent_captures"
done
command -v curl >/dev/null || die "curl not found"

# One socket per agent in netwatchd (--max-agents), and in the simulator; plus the API
# connections (--max-connections, 1,024 by default) and the rest.
MAXAGENTS=$((N + 256))
NWD_FDS=$((MAXAGENTS + 1024 + 256))
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -lt "$NWD_FDS" ]; then
    die "netwatchd needs $NWD_FDS descriptors and the hard limit is $HARD (ulimit -Hn)"
fi

# shellcheck source=bench/workdir.sh
source "$HERE/../workdir.sh"
bench_workdir nw-bench-captures

TICK=$(getconf CLK_TCK)
cpu_s()
{
    sed 's/^.*) //' "/proc/$1/stat" | awk -v k="$TICK" '{ printf "%.2f", ($12 + $13) / k }'
}

SUB=$(cat /proc/sys/kernel/random/uuid)
echo "netwatch captures bench ($MODE): $(date -u +%FT%TZ), git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, $N agents"
echo "work dir on $(df -PT "$DIR" | awk 'NR == 2 { print $2 }'); load average $(cut -d' ' -f1-3 /proc/loadavg)"

"$NWD" token add --token-file "$DIR/tokens" --subscriptions "$SUB" --name bench \
    >"$DIR/token.out" 2>"$DIR/token.log" || die "netwatchd token add failed"
grep -v '^[[:space:]]*$' "$DIR/token.out" | tail -n 1 | tr -d '[:space:]' >"$DIR/api-token"
[ -s "$DIR/api-token" ] || die "netwatchd token add printed no token"
"$SEED" --db "$DIR/nw.db" --subscription "$SUB" --count "$N" --tokens-out "$DIR/agent-tokens" \
    >"$DIR/seed.out" 2>"$DIR/seed.log" || die "bench_seed_agents failed"

(
    ulimit -Sn "$NWD_FDS"
    exec "$NWD" --listen 127.0.0.1:0 --ready-file "$DIR/ready" --db "$DIR/nw.db" \
        --token-file "$DIR/tokens" --log-level warn --max-agents "$MAXAGENTS"
) >"$DIR/netwatchd.log" 2>&1 &
NPID=$!
PIDS+=("$NPID")
PORT=""
for ((i = 0; i < 100; i++)); do
    kill -0 "$NPID" 2>/dev/null || die "netwatchd died at start-up"
    if [ -s "$DIR/ready" ]; then
        PORT=$(grep -oE '[0-9]+' "$DIR/ready" | tail -n 1 || true)
        [ -n "$PORT" ] && break
    fi
    sleep 0.1
done
[[ $PORT =~ ^[0-9]+$ ]] || die "netwatchd wrote no port within 10 s"
for ((i = 0; i < 50; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
done
[ "$code" = 200 ] || die "netwatchd does not answer /healthz"
CPU0=$(cpu_s "$NPID")

rc=0
(
    ulimit -Sn $((N + 256))
    exec "$CAP" --url "http://127.0.0.1:$PORT" --tokens "$DIR/agent-tokens" --count "$N" \
        --api-token-file "$DIR/api-token" --subscription "$SUB" "${PHASES[@]}" "${EXTRA[@]}"
) >"$DIR/captures.out" 2>"$DIR/captures.log" || rc=$?
kill -0 "$NPID" 2>/dev/null || die "netwatchd died during the run"
CPU1=$(cpu_s "$NPID")
grep -v '^BENCH ' "$DIR/captures.out" || true
echo "netwatchd: $(awk -v a="$CPU0" -v b="$CPU1" 'BEGIN { printf "%.2f", b - a }') s CPU during the run," \
    "VmHWM $(awk '$1 == "VmHWM:" { print $2 }' "/proc/$NPID/status") kB," \
    "$(grep -c 'level=warn\|level=error' "$DIR/netwatchd.log" || true) warn/error log lines;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
# netwatchd must stop cleanly on SIGTERM (under ASan a leak or error report makes it exit non-zero).
kill -TERM "$NPID"
nrc=0
wait "$NPID" || nrc=$?
NPID=""
[ "$nrc" = 0 ] || die "netwatchd exited with $nrc after SIGTERM (see its log)"
case $rc in
0) ;;
1) echo "captures.sh: not every capture ran (see above)" >&2; exit 1 ;;
*) die "bench_agent_captures failed (exit $rc)" ;;
esac
