#!/usr/bin/env bash
# bench/agents/run.sh: N simulated agents connected to one netwatchd; reports the time to open
# them all, netwatchd's memory, threads and CPU with N channels up, and the target of issue 3:
# 10,000 agents in at most 200 MB.
#
# Usage: bench/agents/run.sh [BUILD_DIR] [N]
#   BUILD_DIR defaults to <repo>/build; it must hold server/netwatchd, bench/bench_seed_agents
#   and bench/bench_agent_sim (cmake --build BUILD_DIR --target netwatchd bench_seed_agents
#   bench_agent_sim). N defaults to 10000.
#
# Environment (all optional):
#   BENCH_RATE=2000          connections the simulator starts per second at most
#   BENCH_HOLD=60            seconds the N channels are held before the figures "after hold" are
#                            read: past the server's 45 s silence timeout (a channel whose pongs
#                            did not get through would be dropped), MHD's 30 s connection timeout,
#                            and 4 heartbeats (15 s)
#   BENCH_MARGIN=256         --max-agents is N + this
#   BENCH_OPEN_TIMEOUT=300   seconds the simulator gives the N channels to be welcomed
#   BENCH_RSS_TARGET_KB=204800  the target: 200 MiB
#   BENCH_KEEP=1             keep the work dir (db, logs, simulator output) and print its path
#   TMPDIR                   where the work dir (and so netwatchd's database) is made
#
# Descriptors: netwatchd needs one per channel, one per API connection (--max-connections, 1,024
# by default) and its own (database, epoll, eventfds, log), so it runs under `ulimit -n`
# N + BENCH_MARGIN + 1024 + 256; the simulator under N + 64. The script
# stops with a clear message when the hard limit (ulimit -Hn) is lower.
#
# Exit status: 0 when every step ran, whatever PASS/FAIL says (this reports, it is not a test);
# 1 when something failed to run (a binary missing, seeding failed, a process died or did not
# start, a descriptor limit too low); 2 on a usage error.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

API_VERSION=2024-07-01
RATE=${BENCH_RATE:-2000}
HOLD=${BENCH_HOLD:-60}
MARGIN=${BENCH_MARGIN:-256}
OPEN_TIMEOUT=${BENCH_OPEN_TIMEOUT:-300}
RSS_TARGET_KB=${BENCH_RSS_TARGET_KB:-204800}

usage()
{
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

die()
{
    echo "run.sh: $*" >&2
    exit 1
}

case ${1:-} in -h | --help) usage ;; esac
[ $# -le 2 ] || usage
BUILD=${1:-$REPO/build}
N=${2:-10000}
[[ $N =~ ^[1-9][0-9]{0,5}$ ]] || { echo "run.sh: N=$N: want 1..999999" >&2; exit 2; }
for v in BENCH_RATE:$RATE BENCH_HOLD:$HOLD BENCH_MARGIN:$MARGIN BENCH_OPEN_TIMEOUT:$OPEN_TIMEOUT \
    BENCH_RSS_TARGET_KB:$RSS_TARGET_KB; do
    [[ ${v#*:} =~ ^[0-9]{1,7}$ ]] || { echo "run.sh: ${v%%:*}=${v#*:}: want an integer" >&2; exit 2; }
done
[ "$RATE" -ge 1 ] || { echo "run.sh: BENCH_RATE must be >= 1" >&2; exit 2; }

NWD=$BUILD/server/netwatchd
SEED=$BUILD/bench/bench_seed_agents
SIM=$BUILD/bench/bench_agent_sim
for b in "$NWD" "$SEED" "$SIM"; do
    [ -x "$b" ] || die "$b missing: cmake --build $BUILD --target netwatchd bench_seed_agents bench_agent_sim"
done
command -v curl >/dev/null || die "curl not found"

MAXAGENTS=$((N + MARGIN))
[ "$MAXAGENTS" -le 1000000 ] || die "--max-agents $MAXAGENTS is over netwatchd's 1000000"
NWD_FDS=$((MAXAGENTS + 1024 + 256))
SIM_FDS=$((N + 64))
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ]; then
    [ "$HARD" -ge "$NWD_FDS" ] ||
        die "netwatchd needs $NWD_FDS descriptors (N + $MARGIN + 1024 + 256) and the hard limit is $HARD (raise it: ulimit -Hn, or LimitNOFILE)"
fi

# ---- work dir, child processes, clean-up ------------------------------------------------------

# shellcheck source=bench/workdir.sh
source "$HERE/../workdir.sh"
bench_workdir nw-bench-agents

# ---- helpers ----------------------------------------------------------------------------------

# VmRSS, VmHWM or Threads ($2) of pid $1.
proc_field()
{
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}

TICK=$(getconf CLK_TCK)
# utime + stime of pid $1, in clock ticks.
cpu_ticks()
{
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

alive()
{
    kill -0 "$NPID" 2>/dev/null || die "netwatchd died ($1)"
}

# Agents the database shows connected, read by `netwatchd agent list` (a reader of the WAL
# database the server writes; it does not touch the server).
cli_connected()
{
    "$NWD" agent list --db "$DIR/nw.db" 2>>"$DIR/cli.log" |
        awk -F'\t' 'NR > 1 && $5 == "yes" { n++ } END { print n + 0 }'
}

declare -A RSS=() HWM=() THR=() CPU=() CONN=()
# snap NAME: netwatchd's memory, threads and CPU now.
snap()
{
    alive "$1"
    RSS[$1]=$(proc_field "$NPID" VmRSS)
    HWM[$1]=$(proc_field "$NPID" VmHWM)
    THR[$1]=$(proc_field "$NPID" Threads)
    CPU[$1]=$(cpu_ticks "$NPID")
}

# ---- seed -------------------------------------------------------------------------------------

SUB=$(cat /proc/sys/kernel/random/uuid)
echo "netwatch agents bench: $(date -u +%FT%TZ), git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, N=$N"
echo "netwatchd binary built $(date -u -r "$NWD" +%FT%TZ) ($NWD)"
echo "work dir on $(df -PT "$DIR" | awk 'NR == 2 { print $2 }'); ramp $RATE connects/s; hold $HOLD s"

"$NWD" token add --token-file "$DIR/tokens" --subscriptions "$SUB" --name bench \
    >"$DIR/token.out" 2>"$DIR/token.log" || die "netwatchd token add failed"
TOKEN=$(grep -v '^[[:space:]]*$' "$DIR/token.out" | tail -n 1 | tr -d '[:space:]')
[ -n "$TOKEN" ] || die "netwatchd token add printed no token"

"$SEED" --db "$DIR/nw.db" --subscription "$SUB" --count "$N" --tokens-out "$DIR/agent-tokens" \
    >"$DIR/seed.out" 2>"$DIR/seed.log" || die "bench_seed_agents failed"
cat "$DIR/seed.out"

# ---- netwatchd --------------------------------------------------------------------------------

(
    ulimit -Sn "$NWD_FDS"
    exec "$NWD" --listen 127.0.0.1:0 --ready-file "$DIR/ready" --db "$DIR/nw.db" \
        --token-file "$DIR/tokens" --log-level warn --max-agents "$MAXAGENTS"
) >"$DIR/netwatchd.log" 2>&1 &
NPID=$!
PIDS+=("$NPID")
PORT=""
for ((i = 0; i < 100; i++)); do
    alive "start-up"
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
echo "netwatchd: pid $NPID, port $PORT, --max-agents $MAXAGENTS, ulimit -n $(awk '/Max open files/ { print $4 }' "/proc/$NPID/limits")"
sleep 1
snap idle
CONN[idle]=$(cli_connected)

# ---- the simulator ----------------------------------------------------------------------------

(
    ulimit -Sn "$SIM_FDS"
    exec "$SIM" --url "http://127.0.0.1:$PORT" --tokens "$DIR/agent-tokens" --count "$N" \
        --rate "$RATE" --hold $((HOLD + 600)) --open-timeout "$OPEN_TIMEOUT" \
        --ready-file "$DIR/sim.ready"
) >"$DIR/sim.out" 2>"$DIR/sim.log" &
SPID=$!
PIDS+=("$SPID")
T0=$(date +%s)
while [ ! -s "$DIR/sim.ready" ]; do
    alive "while the agents connected"
    kill -0 "$SPID" 2>/dev/null || die "bench_agent_sim exited before its channels were up"
    [ $(($(date +%s) - T0)) -le $((OPEN_TIMEOUT + 60)) ] || die "bench_agent_sim never finished opening"
    sleep 0.2
done
snap connected
CONN[connected]=$(cli_connected)
echo
sed -n '/^open:/,/^hold:/{/^hold:/d;p}' "$DIR/sim.out"
WELCOMED=$(sed -n 's/^welcomed=\([0-9]*\).*/\1/p' "$DIR/sim.ready")

# ---- hold: heartbeats go on, nothing else -----------------------------------------------------

for ((i = 0; i < HOLD; i++)); do
    alive "during the hold"
    kill -0 "$SPID" 2>/dev/null || die "bench_agent_sim died during the hold"
    sleep 1
done
snap held
CONN[held]=$(cli_connected)

# The API's view: one GET of every agent of the subscription (one page: the list has no paging),
# after the memory figures above since it builds the whole list in memory.
code=$(curl -sS -o "$DIR/agents.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT/subscriptions/$SUB/providers/Netwatch/agents?api-version=$API_VERSION" ||
    echo curl-failed)
[ "$code" = 200 ] || die "GET agents: $code $(head -c 300 "$DIR/agents.json" 2>/dev/null)"
API_CONNECTED=$(grep -o '"connected":true' "$DIR/agents.json" | wc -l || true)
API_LISTED=$(grep -o '"type":"Netwatch/agents"' "$DIR/agents.json" | wc -l || true)
API_BYTES=$(wc -c <"$DIR/agents.json")
snap listed
CONN[listed]=$API_CONNECTED

# ---- close: the simulator closes every channel with 1000 --------------------------------------

kill -TERM "$SPID"
for ((i = 0; i < 600; i++)); do
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$SPID" 2>/dev/null && die "bench_agent_sim did not exit within 60 s of SIGTERM"
wait "$SPID" || die "bench_agent_sim failed (exit $?)"
BLINE=$(grep '^BENCH ' "$DIR/sim.out" | tail -n 1 || true)
[ -n "$BLINE" ] || die "no BENCH line from bench_agent_sim"
declare -A S=()
read -ra fields <<<"$BLINE"
for f in "${fields[@]:1}"; do
    S[${f%%=*}]=${f#*=}
done
# netwatchd records each disconnect (one durable write per agent, on one thread): wait until the
# database shows none connected, or the count has not moved for 10 s (records lost), at most 120 s.
T0=$(date +%s.%N)
left=-1 last=-1 still=0
for ((i = 0; i < 240; i++)); do
    alive "while the agents disconnected"
    left=$(cli_connected)
    [ "$left" = 0 ] && break
    if [ "$left" = "$last" ]; then
        still=$((still + 1))
        [ "$still" -ge 20 ] && break
    else
        still=0 last=$left
    fi
    sleep 0.5
done
DISC_S=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
snap closed
CONN[closed]=$left

# ---- report -----------------------------------------------------------------------------------

echo
sed -n '/^hold:/,/^self:/p' "$DIR/sim.out"
echo
printf '%-22s %10s %10s %8s %12s %10s\n' "netwatchd" VmRSS_kB VmHWM_kB Threads "cpu_s(step)" connected
prev=""
for p in idle connected held listed closed; do
    if [ -z "$prev" ]; then
        dcpu=$(awk -v t="${CPU[$p]}" -v k="$TICK" 'BEGIN { printf "%.2f", t / k }')
    else
        dcpu=$(awk -v a="${CPU[$prev]}" -v b="${CPU[$p]}" -v k="$TICK" 'BEGIN { printf "%.2f", (b - a) / k }')
    fi
    case $p in
    idle) label="idle (0 agents)" ;;
    connected) label="$N agents connected" ;;
    held) label="after a ${HOLD} s hold" ;;
    listed) label="after GET agents" ;;
    closed) label="all closed" ;;
    esac
    printf '%-22s %10s %10s %8s %12s %10s\n' "$label" "${RSS[$p]}" "${HWM[$p]}" "${THR[$p]}" "$dcpu" "${CONN[$p]}"
    prev=$p
done
echo "  connected: agents the database shows connected (netwatchd agent list); for \"after GET"
echo "  agents\", the API's count: $API_CONNECTED of $API_LISTED listed, $API_BYTES bytes in one response"
echo "  cpu_s(step): netwatchd CPU since the line above (idle: since start)"
if [ "${CONN[closed]}" = 0 ]; then
    echo "  all closed: the database showed 0 connected $DISC_S s after the simulator was told to close"
else
    echo "  all closed: ${CONN[closed]} agents still shown connected $DISC_S s after the simulator closed"
    echo "  its channels, and the count had stopped moving: those disconnects were never recorded"
fi
W=${S[welcomed]}
[ "$W" -gt 0 ] || W=1
awk -v i="${RSS[idle]}" -v c="${RSS[held]}" -v w="$W" -v max="$RSS_TARGET_KB" 'BEGIN {
    per = (c - i) / w
    printf "per agent: (VmRSS after hold - idle) / agents welcomed = %.1f kB; at that rate 10,000 agents take %.0f MiB (target %.0f MiB)\n",
        per, (i + 10000 * per) / 1024, max / 1024 }'
echo "simulator: cpu ${S[cpu_s]} s, max RSS ${S[maxrss_kb]} kB (one thread, one epoll loop)"

warns=$(grep -c 'level=warn\|level=error' "$DIR/netwatchd.log" || true)
echo "netwatchd log: $warns warn/error lines"
if [ "$warns" -gt 0 ]; then
    grep -o 'event=[a-z_]*' "$DIR/netwatchd.log" | sort | uniq -c | sort -rn | head -n 5 | sed 's/^/  /'
fi

echo
allok=$([ "${S[welcomed]}" = "$N" ] && echo PASS || echo FAIL)
echo "$allok all welcomed: ${S[welcomed]} of $N (failed ${S[failed]}), open in ${S[open_s]} s," \
    "connect->welcome p50 ${S[welcome_p50_ms]} ms p99 ${S[welcome_p99_ms]} ms"
conok=$([ "${CONN[connected]}" = "$N" ] && [ "${CONN[held]}" = "$N" ] && [ "$API_CONNECTED" = "$N" ] &&
    [ "${S[open_at_hold_end]}" = "$N" ] && echo PASS || echo FAIL)
echo "$conok all connected: $N agents, database ${CONN[connected]} then ${CONN[held]} after the hold," \
    "API $API_CONNECTED, open in the simulator ${S[open_at_hold_end]}, dropped ${S[dropped]}," \
    "pinged during the hold ${S[pinged]}"
discok=$([ "${CONN[closed]}" = 0 ] && echo PASS || echo FAIL)
echo "$discok all disconnects recorded: ${CONN[closed]} of ${CONN[held]} still shown connected" \
    "$DISC_S s after the simulator closed (${S[closed_clean]} closes answered by the server)"
peak=${HWM[held]}
awk -v n="$N" -v w="$WELCOMED" -v r="${RSS[held]}" -v h="$peak" -v max="$RSS_TARGET_KB" 'BEGIN {
    ok = (h <= max && w == n)
    printf "%s %d agents in <= %d kB (%.0f MiB): VmHWM %d kB = %.1f MiB (VmRSS %d kB) with %d connected\n",
        (ok ? "PASS" : "FAIL"), n, max, max / 1024, h, h / 1024, r, w }'
exit 0
