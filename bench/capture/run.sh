#!/usr/bin/env bash
# bench/capture/run.sh: netwatch-agent against tcpdump, capturing the same UDP traffic across a
# veth pair at rising packet rates (issue 4).
#
# Usage: bench/capture/run.sh [BUILD_DIR] [full|smoke]
#   full   (default) every rate of BENCH_RATES; prints the table and the two targets as
#          PASS/FAIL lines (a report: they do not change the exit status).
#   smoke  one low rate (ctest bench.capture_smoke); exit 1 unless the agent captured every
#          packet sent, with no drop, and its file holds them all.
#   BUILD_DIR defaults to <repo>/build; it must hold server/netwatchd, agent/netwatch-agent,
#   bench/bench_capture_traffic and bench/bench_capture_expr.
#
# Set-up: network namespaces A and B joined by a veth pair (10.78.0.1 in A, .2 in B; IPv6 off and
# static neighbours, so nothing but our traffic crosses it). netwatchd and netwatch-agent both
# run in A (the agent reaches netwatchd on A's 127.0.0.1); the agent captures on A's veth only.
# For each rate, B sends COUNT = rate x BENCH_SECONDS UDP datagrams to A port 9000 (a bound
# socket in A that never reads, so A sends nothing back), first into a capture of the real
# agent (created, stopped and read over the API with curl, filter {UDP, localPort 9000}), then
# into tcpdump -p with the same pcap expression (bench_capture_expr prints the one the agent
# builds), one after the other, never at the same time: two capturers on 2 CPUs would take CPU
# from each other and from the sender.
#
# Columns: sent (datagrams the sender handed to the kernel) and pps (its achieved rate);
# delivered (A's veth rx_packets delta: what reached A's stack and so every packet tap; the sender
# can outrun A's backlog at the highest rates); captured (packets in the capture file, read back
# with tcpdump -r); dropped (the kernel's count of packets the capture socket had no room for:
# captureDetails.drops of the agent, tcpdump's "dropped by kernel" + "dropped by interface");
# cpu_s (on-CPU time of the capturing process, all threads, from just before the send to
# BENCH_SETTLE seconds after it: the sum of /proc/PID/task/*/schedstat, the nanosecond clock that
# utime+stime are scaled from) and cpu_s/Mpkt (cpu_s per million packets delivered); sha_s/Mpkt
# (agent only): the CPU a SHA-256 of the agent's file takes at `openssl speed`'s rate, per million
# packets: an estimate of the share of the agent's CPU that goes to the digest its report carries.
#
# Environment (all optional): BENCH_RATES ("10000 50000 100000 200000 400000 max"; max: no
# pacing), BENCH_SECONDS (4: packets per rate = rate x seconds), BENCH_MAX_PACKETS (2000000, for
# max), BENCH_PAYLOAD (64 UDP payload bytes: 106-byte frames), BENCH_SETTLE (1.5 s after the send
# before CPU is read and the capture stopped; more than tcpdump's 1 s buffer timeout),
# BENCH_REPEAT (1: tries per rate, each an agent trial then a tcpdump trial; the CPU target takes
# the medians), BENCH_KEEP=1 keeps the work dir (logs, files), TMPDIR is where it is made.
#
# Needs root (namespaces), tcpdump, curl and jq (scripts/install-deps.sh). Exit status: 0 ran
# (smoke: and passed); 1 something failed to run, or the smoke check failed; 2 usage; 77 not
# root (skipped).
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
    echo "capture/run.sh: $*" >&2
    exit 1
}

case ${1:-} in -h | --help) usage ;; esac
BUILD=$REPO/build MODE=full
case $# in
0) ;;
1) case $1 in full | smoke) MODE=$1 ;; *) BUILD=$1 ;; esac ;;
2) BUILD=$1 MODE=$2 ;;
*) usage ;;
esac
case $MODE in
full)
    RATES=${BENCH_RATES:-10000 50000 100000 200000 400000 max}
    SECONDS_PER_RATE=${BENCH_SECONDS:-4}
    ;;
smoke)
    RATES=${BENCH_RATES:-2000}
    SECONDS_PER_RATE=${BENCH_SECONDS:-1}
    ;;
*) usage ;;
esac
MAXPKTS=${BENCH_MAX_PACKETS:-2000000}
REPEAT=${BENCH_REPEAT:-1}
PAYLOAD=${BENCH_PAYLOAD:-64}
SETTLE=${BENCH_SETTLE:-1.5}
for r in $RATES; do
    [[ $r == max || $r =~ ^[1-9][0-9]{0,7}$ ]] || { echo "capture/run.sh: rate $r: want pps or max" >&2; exit 2; }
done
[[ $SECONDS_PER_RATE =~ ^[1-9][0-9]{0,3}$ && $MAXPKTS =~ ^[1-9][0-9]{0,8}$ ]] || usage
[[ $PAYLOAD =~ ^[0-9]{1,4}$ && $SETTLE =~ ^[0-9]+(\.[0-9]+)?$ && $REPEAT =~ ^[1-9]$ ]] || usage

NWD=$BUILD/server/netwatchd
AGENT=$BUILD/agent/netwatch-agent
TRAFFIC=$BUILD/bench/bench_capture_traffic
EXPRTOOL=$BUILD/bench/bench_capture_expr
for b in "$NWD" "$AGENT" "$TRAFFIC" "$EXPRTOOL"; do
    [ -x "$b" ] || die "$b missing: cmake --build $BUILD --target netwatchd netwatch-agent bench_capture_traffic bench_capture_expr"
done
for t in tcpdump curl jq ip; do
    command -v "$t" >/dev/null || die "$t not found (scripts/install-deps.sh)"
done
[ "$(id -u)" = 0 ] || { echo "capture/run.sh: needs root (network namespaces); skipped" >&2; exit 77; }

# shellcheck source=bench/workdir.sh
source "$HERE/../workdir.sh"
bench_workdir nw-bench-capture

NSA=nwbA$$ NSB=nwbB$$ VA=nwbA$$ VB=nwbB$$
IPA=10.78.0.1 IPB=10.78.0.2 MACA=02:78:00:00:00:01 MACB=02:78:00:00:00:02 PORT_UDP=9000
netns_del()
{
    ip netns del "$NSA" 2>/dev/null || true
    ip netns del "$NSB" 2>/dev/null || true
}
BENCH_EXIT_HOOKS+=(netns_del)

# (Not for a child in the background: its pid must be the program's; ip netns exec execs it.)
inA() { ip netns exec "$NSA" "$@"; }
inB() { ip netns exec "$NSB" "$@"; }

# CPU time of a process, all threads, in ns.
cpu_ns()
{
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'
}
rx_packets() { inA cat "/sys/class/net/$VA/statistics/rx_packets"; }
# CPU ns the SHA-256 of a file takes at OpenSSL's speed on this CPU (SHA_BPS, measured once):
# the digest the agent computes of every byte it writes (its completion report carries it), and
# tcpdump does not.
sha_ns() { awk -v b="$(stat -c %s "$1")" -v s="$SHA_BPS" 'BEGIN { printf "%d", b / s * 1e9 }'; }
# Packets in a pcap file, read back by libpcap.
file_packets() { tcpdump -r "$1" -n -q 2>/dev/null | wc -l; }

{ ip netns add "$NSA" && ip netns add "$NSB"; } || die "cannot add network namespaces"
for ns in "$NSA" "$NSB"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add "$VA" netns "$NSA" address "$MACA" type veth peer name "$VB" netns "$NSB" address "$MACB" ||
    die "cannot add the veth pair"
ip -n "$NSA" addr add "$IPA/24" dev "$VA"
ip -n "$NSB" addr add "$IPB/24" dev "$VB"
for ns in "$NSA" "$NSB"; do
    ip -n "$ns" link set lo up
done
ip -n "$NSA" link set "$VA" up
ip -n "$NSB" link set "$VB" up
ip -n "$NSA" neigh replace "$IPB" lladdr "$MACB" dev "$VA" nud permanent
ip -n "$NSB" neigh replace "$IPA" lladdr "$MACA" dev "$VB" nud permanent

# The pcap expression the agent builds for {UDP, localPort 9000} in A (A's addresses are local).
EXPR=$(inA "$EXPRTOOL" UDP "" "" "$PORT_UDP" "") || die "bench_capture_expr failed"

SUB=$(cat /proc/sys/kernel/random/uuid)
VM=/subscriptions/$SUB/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/benchvm
NW=/subscriptions/$SUB/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1
API=api-version=2024-07-01
"$NWD" token add --token-file "$DIR/tokens" --subscriptions "$SUB" --name bench \
    >"$DIR/token.out" 2>"$DIR/token.log" || die "netwatchd token add failed"
TOKEN=$(grep -v '^[[:space:]]*$' "$DIR/token.out" | tail -n 1 | tr -d '[:space:]')
[ -n "$TOKEN" ] || die "netwatchd token add printed no token"
(umask 077 && "$NWD" agent add "$VM" --db "$DIR/nw.db" >"$DIR/agent-token" 2>"$DIR/cli.log") ||
    die "netwatchd agent add failed"
mkdir -p "$DIR/captures"

ip netns exec "$NSA" "$NWD" --listen 127.0.0.1:0 --ready-file "$DIR/ready" --db "$DIR/nw.db" \
    --token-file "$DIR/tokens" --log-level warn >"$DIR/netwatchd.log" 2>&1 &
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
BASE=http://127.0.0.1:$PORT

# api METHOD PATH [BODY]: the body of the answer on stdout; fails unless 2xx.
api()
{
    local args=(-sS --fail-with-body -X "$1" -H "Authorization: Bearer $TOKEN")
    [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' -d "$3")
    inA curl "${args[@]}" "$BASE$2"
}

ip netns exec "$NSA" "$AGENT" --server "$BASE" --token-file "$DIR/agent-token" --state-dir "$DIR/agent" \
    --capture-root "$DIR/captures" --interfaces "$VA" --resource-id "$VM" \
    >"$DIR/agent.log" 2>&1 &
APID=$!
PIDS+=("$APID")
for ((i = 0; i < 100; i++)); do
    kill -0 "$APID" 2>/dev/null || die "netwatch-agent died at start-up"
    api GET "/subscriptions/$SUB/providers/Netwatch/agents?$API" 2>/dev/null |
        jq -e '.value[0].properties.connected == true' >/dev/null 2>&1 && break
    sleep 0.1
done
[ "$i" -lt 100 ] || die "the agent did not connect within 10 s"
api PUT "$NW?$API" '{"location":"westus2"}' >/dev/null || die "watcher PUT failed"

ip netns exec "$NSA" "$TRAFFIC" sink "$PORT_UDP" >"$DIR/sink.log" 2>&1 &
PIDS+=("$!")

# send COUNT RATE: B -> A; "sent achieved_pps" on stdout.
send()
{
    local out
    out=$(inB "$TRAFFIC" send "$IPA" "$PORT_UDP" "$1" "$2" "$PAYLOAD") || die "the sender failed: $out"
    awk '{ print $2, $6 }' <<<"$out"
}

# query NAME: the capture's queryStatus.
query() { api POST "$NW/packetCaptures/$1/queryStatus?$API"; }

wait_status()
{
    local name=$1 want=$2 st=""
    for ((i = 0; i < 300; i++)); do
        st=$(query "$name" | jq -r .packetCaptureStatus) || true
        [ "$st" = "$want" ] && return 0
        [ "$st" = Error ] && die "capture $name failed: $(query "$name")"
        sleep 0.1
    done
    die "capture $name is $st, not $want, after 30 s"
}

# One trial's result line: tool rate sent pps delivered captured reported dropped cpu_ns.
trial_agent()
{
    local rate=$1 count=$2 label=$3 name=bench$((++TRIAL)) c0 c1 r0 r1 sp q
    api PUT "$NW/packetCaptures/$name?$API" "{\"properties\":{\"target\":\"$VM\",
        \"storageLocation\":{\"filePath\":\"/var/captures/$name.cap\"},
        \"timeLimitInSeconds\":3600,\"totalBytesPerSession\":4294967295,
        \"filters\":[{\"protocol\":\"UDP\",\"localPort\":\"$PORT_UDP\"}]}}" >/dev/null ||
        die "capture PUT failed"
    wait_status "$name" Running
    r0=$(rx_packets) c0=$(cpu_ns "$APID")
    send "$count" "$rate" >"$DIR/sent"
    sp=$(cat "$DIR/sent")
    sleep "$SETTLE"
    c1=$(cpu_ns "$APID") r1=$(rx_packets)
    api POST "$NW/packetCaptures/$name/stop?$API" >/dev/null || die "stop failed"
    wait_status "$name" Stopped
    q=$(query "$name" | jq -r '"\(.captureDetails.packets) \(.captureDetails.drops)"')
    local file=$DIR/captures/$name.cap
    [ -f "$file" ] || die "the agent wrote no $file"
    echo "agent $label $sp $((r1 - r0)) $(file_packets "$file") $q $((c1 - c0)) $(sha_ns "$file")"
    rm -f "$file"
}

trial_tcpdump()
{
    local rate=$1 count=$2 label=$3 file=$DIR/tcpdump.pcap log=$DIR/tcpdump.log c0 c1 r0 r1 sp pid
    rm -f "$file"
    # -Z root: stay root, so the file can be written wherever the work dir is.
    ip netns exec "$NSA" tcpdump -p -n -Z root -i "$VA" -w "$file" "$EXPR" 2>"$log" &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 100; i++)); do
        grep -qs 'listening on' "$log" && break
        kill -0 "$pid" 2>/dev/null || die "tcpdump died: $(cat "$log")"
        sleep 0.05
    done
    r0=$(rx_packets) c0=$(cpu_ns "$pid")
    send "$count" "$rate" >"$DIR/sent"
    sp=$(cat "$DIR/sent")
    sleep "$SETTLE"
    c1=$(cpu_ns "$pid") r1=$(rx_packets)
    kill -TERM "$pid" # it prints its statistics then
    wait "$pid" || true
    local captured drops
    captured=$(awk '/packets captured/ { print $1 }' "$log")
    drops=$(awk '/dropped by (kernel|interface)/ { s += $1 } END { print s + 0 }' "$log")
    echo "tcpdump $label $sp $((r1 - r0)) $(file_packets "$file") ${captured:-?} $drops $((c1 - c0)) 0"
    rm -f "$file"
}

echo "netwatch capture bench ($MODE): $(date -u +%FT%TZ), git $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, kernel $(uname -r)"
tcpdump --version 2>&1 | head -n 2 | tr '\n' ' ' && echo
echo "load average $(cut -d' ' -f1-3 /proc/loadavg); payload $PAYLOAD B ($((PAYLOAD + 42))-byte frames); $SECONDS_PER_RATE s per rate; settle $SETTLE s"
echo "filter {UDP, localPort $PORT_UDP} -> pcap expression: $EXPR"
# Bytes per CPU second (openssl speed divides by user time) in 64 KiB updates, as the agent's.
SHA_BPS=$(openssl speed -evp sha256 -bytes 65536 -seconds 1 2>/dev/null |
    awk '/^sha256/ { sub(/k$/, "", $2); printf "%d", $2 * 1000 }')
[[ $SHA_BPS =~ ^[1-9][0-9]*$ ]] || die "openssl speed gave no SHA-256 rate"
echo "SHA-256 (openssl speed -evp sha256, 64 KiB): $((SHA_BPS / 1000000)) MB per CPU second"

TRIAL=0
: >"$DIR/results"
for rate in $RATES; do
    if [ "$rate" = max ]; then
        count=$MAXPKTS pps=0
    else
        count=$((rate * SECONDS_PER_RATE)) pps=$rate
    fi
    for ((try = 1; try <= REPEAT; try++)); do
        # Not in $(...): a die in a trial must end the script, and TRIAL must count.
        trial_agent "$pps" "$count" "$rate" >"$DIR/trial"
        echo "$(cat "$DIR/trial") $try" >>"$DIR/results"
        trial_tcpdump "$pps" "$count" "$rate" >"$DIR/trial"
        echo "$(cat "$DIR/trial") $try" >>"$DIR/results"
    done
done
kill -0 "$APID" 2>/dev/null || die "netwatch-agent died during the run"
kill -0 "$NPID" 2>/dev/null || die "netwatchd died during the run"

awk '
BEGIN {
    printf "%-8s %-3s %-8s %9s %8s %9s %9s %8s %7s %10s %10s\n", "rate", "try", "tool", "sent",
        "pps", "delivered", "captured", "dropped", "cpu_s", "cpu_s/Mpkt", "sha_s/Mpkt"
}
{
    cpu = $9 / 1e9
    per = $5 > 0 ? cpu / $5 * 1e6 : 0
    sha = $1 == "agent" && $5 > 0 ? sprintf("%.3f", $10 / 1e9 / $5 * 1e6) : "-"
    printf "%-8s %-3d %-8s %9d %8d %9d %9d %8d %7.3f %10.3f %10s\n", $2, $11, $1, $3, $4, $5, $6,
        $8, cpu, per, sha
    if ($6 != $7) mismatch = mismatch " " $1 "@" $2 "(file " $6 " reported " $7 ")"
}
END { if (mismatch != "") print "WARNING captured in file != reported:" mismatch }
' "$DIR/results"

if [ "$MODE" = smoke ]; then
    read -r _ _ sent _ delivered captured reported dropped _ _ _ < <(grep '^agent ' "$DIR/results" | head -n 1)
    [ "$sent" = "$delivered" ] || die "smoke: $sent sent but $delivered delivered on the veth"
    if [ "$captured" != "$sent" ] || [ "$reported" != "$sent" ] || [ "$dropped" != 0 ]; then
        die "smoke: the agent captured $captured (reported $reported, dropped $dropped) of $sent"
    fi
    echo "smoke: ok, the agent captured all $sent packets"
    exit 0
fi

# The targets, per rate: no drop in any try where tcpdump had none; the median CPU per packet
# (over the tries) no more than tcpdump's.
awk '
function median(v, k,    i, j, x) {
    for (i = 2; i <= k; i++)
        for (j = i; j > 1 && v[j - 1] > v[j]; j--) { x = v[j]; v[j] = v[j - 1]; v[j - 1] = x }
    return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
}
{ r = $2; t = $11; per = $5 > 0 ? $9 / 1e9 / $5 * 1e6 : 0 }
$1 == "agent" {
    if (!(r in seen)) { seen[r] = 1; order[++n] = r }
    ad[r, t] = $8; ac[r, t] = $6; adl[r, t] = $5; tries[r] = t
    acpu[r, t] = per; asha[r, t] = $5 > 0 ? $10 / 1e9 / $5 * 1e6 : 0
}
$1 == "tcpdump" { td[r, t] = $8; tcpu[r, t] = per }
END {
    for (i = 1; i <= n; i++) {
        r = order[i]; k = tries[r]; ok = 1; cmp = 0; lost = ""
        for (t = 1; t <= k; t++) {
            a[t] = acpu[r, t]; b[t] = tcpu[r, t]; h[t] = asha[r, t]
            if (td[r, t] == 0) {
                cmp++
                if (ad[r, t] != 0 || ac[r, t] != adl[r, t]) { ok = 0; lost = lost " try " t ": " ad[r, t] " dropped, " ac[r, t] "/" adl[r, t] " captured" }
            }
        }
        if (cmp)
            printf "%s drops@%s: %d of %d tries where tcpdump dropped none%s\n", ok ? "PASS" : "FAIL", r,
                cmp, k, ok ? ", the agent dropped none and captured every packet delivered" : ";" lost
        else
            printf "n/a  drops@%s: tcpdump dropped packets in every try\n", r
        ma = median(a, k); mb = median(b, k); mh = median(h, k)
        printf "%s cpu@%s: median of %d: agent %.3f s/Mpkt, tcpdump %.3f s/Mpkt (agent less the SHA-256 of its file: %.3f)\n",
            ma <= mb ? "PASS" : "FAIL", r, k, ma, mb, ma - mh
    }
}' "$DIR/results"
