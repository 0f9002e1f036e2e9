#!/usr/bin/env bash
# bench/api/run.sh: load-test netwatchd's REST API with wrk beside a trivial libmicrohttpd
# responder, in one run, and report requests/s, latency and the three targets of the issue.
#
# Usage: bench/api/run.sh [BUILD_DIR]
#   BUILD_DIR defaults to <repo>/build; it must hold server/netwatchd and
#   bench/bench_trivial_responder (cmake --build BUILD_DIR --target netwatchd bench_trivial_responder).
#
# Environment (all optional):
#   BENCH_SECONDS=10          wrk duration of each scenario
#   BENCH_THREADS=2           wrk threads (-t)
#   BENCH_CONNS=32            wrk connections (-c)
#   BENCH_RESPONDER_THREADS=2 thread pool of the trivial responder (netwatchd's default model)
#   BENCH_ONLY=all            comma list of scenarios: trivial,get,list,query,create
#                             (BENCH_ONLY=trivial needs no netwatchd: checks the wrk plumbing)
#   BENCH_KEEP=1              keep the work dir (db, logs, raw wrk output) and print its path
#   TMPDIR                    where the work dir (and so netwatchd's database) is made; put it on
#                             the disk you want creates measured on: tmpfs makes fsync free
#
# Scenarios, in this order:
#   trivial  GET  bench_trivial_responder (same path and headers as "get"): the baseline
#   get      GET  .../networkWatchers/nw/packetCaptures/pc1
#   list     GET  .../networkWatchers/nw/packetCaptures (100 captures)
#   query    POST .../packetCaptures/pc1/queryStatus, empty body (post.lua)
#   create   PUT  .../packetCaptures/<unique name>, each must be 201 (create.lua)
#
# Targets (2-core machine): get >= 0.5 x trivial requests/s; create >= 5,000 201s/s with no
# other status; netwatchd idle RSS < 10 MiB (10240 kB of VmRSS, read after start-up, before any
# API traffic).
#
# Exit status: 0 when every step ran, whatever PASS/FAIL says (this reports, it is not a test);
# 1 when something failed to run (a server did not start or died, curl set-up failed, wrk failed
# or printed no result); 2 on a usage error.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

API_VERSION=2024-07-01
RSS_TARGET_KB=10240
CREATE_TARGET=5000
GET_RATIO_TARGET=0.5
ALL_SCENARIOS="trivial get list query create"

SECS=${BENCH_SECONDS:-10}
WRK_THREADS=${BENCH_THREADS:-2}
WRK_CONNS=${BENCH_CONNS:-32}
RESPONDER_THREADS=${BENCH_RESPONDER_THREADS:-2}
ONLY=${BENCH_ONLY:-all}

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
[ $# -le 1 ] || usage
BUILD=${1:-$REPO/build}

for v in BENCH_SECONDS:$SECS BENCH_THREADS:$WRK_THREADS BENCH_CONNS:$WRK_CONNS \
    BENCH_RESPONDER_THREADS:$RESPONDER_THREADS; do
    [[ ${v#*:} =~ ^[1-9][0-9]{0,4}$ ]] || { echo "run.sh: ${v%%:*}=${v#*:}: want a positive integer" >&2; exit 2; }
done
if [ "$ONLY" = all ]; then
    ONLY=${ALL_SCENARIOS// /,}
fi
IFS=, read -ra SCENARIOS <<<"$ONLY"
for s in "${SCENARIOS[@]}"; do
    [[ " $ALL_SCENARIOS " == *" $s "* ]] || { echo "run.sh: BENCH_ONLY: unknown scenario '$s' (want: $ALL_SCENARIOS)" >&2; exit 2; }
done

wants()
{
    [[ ",$ONLY," == *",$1,"* ]]
}

NEED_NWD=0
for s in get list query create; do
    if wants "$s"; then NEED_NWD=1; fi
done

NWD=$BUILD/server/netwatchd
RESPONDER=$BUILD/bench/bench_trivial_responder
command -v wrk >/dev/null || die "wrk not found (Debian package wrk)"
command -v curl >/dev/null || die "curl not found"
if wants trivial; then
    [ -x "$RESPONDER" ] || die "$RESPONDER missing: cmake --build $BUILD --target bench_trivial_responder"
fi
if [ $NEED_NWD = 1 ]; then
    [ -x "$NWD" ] || die "$NWD missing: cmake --build $BUILD --target netwatchd (or BENCH_ONLY=trivial)"
fi

# ---- work dir, child processes, clean-up ------------------------------------------------------

# shellcheck source=bench/workdir.sh
source "$HERE/../workdir.sh"
bench_workdir nw-bench 50

# Waits for a server's ready file, then for it to answer HTTP; prints the port.
# $1 pid, $2 ready file, $3 name for messages, $4 path to probe.
wait_ready()
{
    local pid=$1 file=$2 name=$3 probe=$4 port="" i code
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up"
        if [ -s "$file" ]; then
            # The port, or host:port: the last number in the file.
            port=$(grep -oE '[0-9]+' "$file" | tail -n 1 || true)
            [ -n "$port" ] && break
        fi
        sleep 0.1
    done
    if ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
        die "$name wrote no port to $file within 10 s"
    fi
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up"
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$probe" || true)
        if [ "$code" = 200 ]; then
            echo "$port"
            return 0
        fi
        sleep 0.1
    done
    die "$name does not answer 200 on http://127.0.0.1:$port$probe"
}

# VmRSS or VmHWM ($2) of pid $1, in kB.
proc_kb()
{
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}

# ---- servers ----------------------------------------------------------------------------------

SUB=$(cat /proc/sys/kernel/random/uuid)
TAG=$(printf '%s' "${SUB//-/}" | cut -c1-8)
WATCHER=/subscriptions/$SUB/resourceGroups/rg/providers/Microsoft.Network/networkWatchers/nw
CAPTURES=$WATCHER/packetCaptures
VM=/subscriptions/$SUB/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1
TOKEN=bench-token-placeholder
TPORT="" NPORT="" NPID="" IDLE_RSS="" LOAD_RSS="" PEAK_RSS=""

if wants trivial; then
    "$RESPONDER" 0 --threads "$RESPONDER_THREADS" --ready-file "$DIR/trivial.ready" \
        >"$DIR/trivial.log" 2>&1 &
    TPID=$!
    PIDS+=("$TPID")
    TPORT=$(wait_ready "$TPID" "$DIR/trivial.ready" bench_trivial_responder /)
fi

if [ $NEED_NWD = 1 ]; then
    "$NWD" token add --token-file "$DIR/tokens" --subscriptions "$SUB" --name bench \
        >"$DIR/token.out" 2>"$DIR/token.log" || die "netwatchd token add failed"
    TOKEN=$(grep -v '^[[:space:]]*$' "$DIR/token.out" | tail -n 1 | tr -d '[:space:]')
    [ -n "$TOKEN" ] || die "netwatchd token add printed no token"

    "$NWD" --listen 127.0.0.1:0 --ready-file "$DIR/ready" --db "$DIR/nw.db" \
        --token-file "$DIR/tokens" --log-level warn >"$DIR/netwatchd.log" 2>&1 &
    NPID=$!
    PIDS+=("$NPID")
    NPORT=$(wait_ready "$NPID" "$DIR/ready" netwatchd /healthz)
    # Idle: serving, one /healthz answered, no API traffic yet. A second for lazy start-up work.
    sleep 1
    IDLE_RSS=$(proc_kb "$NPID" VmRSS)
    [ -n "$IDLE_RSS" ] || die "cannot read VmRSS of netwatchd"
fi

# ---- seed: a watcher and 100 captures ---------------------------------------------------------

# api METHOD PATH [BODY]: prints the HTTP status; the response body goes to $DIR/resp.
api()
{
    local args=(-sS -o "$DIR/resp" -w '%{http_code}' -X "$1"
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
    if [ $# -ge 3 ]; then args+=(--data-binary "$3"); fi
    curl "${args[@]}" "http://127.0.0.1:$NPORT$2?api-version=$API_VERSION" || echo "curl-failed"
}

if [ $NEED_NWD = 1 ]; then
    code=$(api PUT "$WATCHER" '{"location":"westus2"}')
    [[ $code == 20[01] ]] || die "PUT watcher: $code $(head -c 300 "$DIR/resp")"
    for i in $(seq 1 100); do
        body='{"properties":{"target":"'$VM'","storageLocation":{"filePath":"/var/captures/pc'$i'.cap"}}}'
        code=$(api PUT "$CAPTURES/pc$i" "$body")
        [ "$code" = 201 ] || die "PUT capture pc$i: $code $(head -c 300 "$DIR/resp")"
    done
    code=$(api GET "$CAPTURES")
    [ "$code" = 200 ] || die "GET list: $code $(head -c 300 "$DIR/resp")"
    n=$(grep -o '/packetCaptures/pc[0-9]*"' "$DIR/resp" | sort -u | wc -l)
    [ "$n" = 100 ] || echo "run.sh: warning: the list shows $n of the 100 seeded captures" >&2
    LIST_BYTES=$(wc -c <"$DIR/resp")
fi

# ---- wrk --------------------------------------------------------------------------------------

declare -A R=()

# run_wrk NAME URL SCRIPT [SCRIPT ARGS...]: runs wrk, parses report.lua's BENCH line into R[NAME.*].
run_wrk()
{
    local name=$1 url=$2 script=$3 out=$DIR/wrk-$1.txt line fields f
    shift 3
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${SECS}s" --latency \
        -H "Authorization: Bearer $TOKEN" -s "$script" "$url" -- "$@" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk failed for $name"; }
    line=$(grep '^BENCH ' "$out" | tail -n 1 || true)
    [ -n "$line" ] || { cat "$out" >&2; die "no BENCH line from wrk for $name"; }
    read -ra fields <<<"$line"
    for f in "${fields[@]:1}"; do
        R[$name.${f%%=*}]=${f#*=}
    done
    [ "${R[$name.requests]:-0}" -gt 0 ] || { cat "$out" >&2; die "$name: no request completed"; }
    if [ -n "$NPID" ]; then
        kill -0 "$NPID" 2>/dev/null || die "netwatchd died during $name"
    fi
}

echo "netwatch API bench: $(date -u +%FT%TZ), git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs"
echo "wrk -t$WRK_THREADS -c$WRK_CONNS -d${SECS}s; trivial responder pool $RESPONDER_THREADS;" \
    "work dir on $(df -PT "$DIR" | awk 'NR == 2 { print $2 }')"
if [ $NEED_NWD = 1 ]; then
    echo "seeded 1 watcher, 100 captures (list body $LIST_BYTES bytes)"
fi

if wants trivial; then
    run_wrk trivial "http://127.0.0.1:$TPORT$CAPTURES/pc1?api-version=$API_VERSION" "$HERE/get.lua"
fi
if wants get; then
    run_wrk get "http://127.0.0.1:$NPORT$CAPTURES/pc1?api-version=$API_VERSION" "$HERE/get.lua"
fi
if wants list; then
    run_wrk list "http://127.0.0.1:$NPORT$CAPTURES?api-version=$API_VERSION" "$HERE/get.lua"
fi
if wants query; then
    run_wrk query "http://127.0.0.1:$NPORT$CAPTURES/pc1/queryStatus?api-version=$API_VERSION" \
        "$HERE/post.lua"
fi
if wants create; then
    run_wrk create "http://127.0.0.1:$NPORT$CAPTURES" "$HERE/create.lua" \
        "$CAPTURES" "$VM" "$TAG" "$API_VERSION"
fi

if [ -n "$NPID" ]; then
    LOAD_RSS=$(proc_kb "$NPID" VmRSS)
    PEAK_RSS=$(proc_kb "$NPID" VmHWM)
fi

# ---- report -----------------------------------------------------------------------------------

echo
printf '%-9s %12s %10s %10s %9s %8s\n' scenario requests/s p50_ms p99_ms non-2xx* sock_err
for s in $ALL_SCENARIOS; do
    wants "$s" || continue
    bad=${R[$s.non2xx]}
    if [ "$s" = create ]; then bad=${R[$s.bad]}; fi
    awk -v s="$s" -v rps="${R[$s.rps]}" -v p50="${R[$s.p50_us]}" -v p99="${R[$s.p99_us]}" \
        -v bad="$bad" -v se="${R[$s.sock_errors]}" \
        'BEGIN { printf "%-9s %12.1f %10.2f %10.2f %9d %8d\n", s, rps, p50 / 1000, p99 / 1000, bad, se }'
done
echo "* create: responses other than 201; others: wrk's count of statuses > 399"
if wants create && [ "${R[create.bad]}" != 0 ]; then
    echo "  first non-201 create response: ${R[create.first_bad]}"
fi
if [ -n "$NPID" ]; then
    echo "netwatchd RSS: idle $IDLE_RSS kB, after load $LOAD_RSS kB, peak (VmHWM) $PEAK_RSS kB"
fi

echo
if wants trivial && wants get; then
    awk -v g="${R[get.rps]}" -v t="${R[trivial.rps]}" -v min="$GET_RATIO_TARGET" 'BEGIN {
        r = g / t
        printf "%s GET rate: %.1f/s = %.2f x trivial %.1f/s (target >= %.2f)\n",
            (r >= min ? "PASS" : "FAIL"), g, r, t, min }'
else
    echo "SKIP GET rate: needs the trivial and get scenarios"
fi
if wants create; then
    awk -v n="${R[create.requests]}" -v bad="${R[create.bad]}" -v us="${R[create.duration_us]}" \
        -v min="$CREATE_TARGET" 'BEGIN {
        ok = (n - bad) / (us / 1e6)
        printf "%s create rate: %.1f 201s/s, %d other responses (target >= %d/s, none other)\n",
            (ok >= min && bad == 0 ? "PASS" : "FAIL"), ok, bad, min }'
else
    echo "SKIP create rate: needs the create scenario"
fi
if [ -n "$IDLE_RSS" ]; then
    awk -v r="$IDLE_RSS" -v max="$RSS_TARGET_KB" 'BEGIN {
        printf "%s idle RSS: %d kB = %.2f MiB (target < %d kB = 10 MiB)\n",
            (r < max ? "PASS" : "FAIL"), r, r / 1024, max }'
else
    echo "SKIP idle RSS: needs netwatchd"
fi
exit 0
