#!/bin/sh
# Runs the official Azure SDK test (sdk-test.mjs) against a throw-away netwatchd:
#   tests/node/run-sdk-test.sh build/server/netwatchd
# In a temporary folder it makes a token for a fresh subscription GUID
# (`netwatchd token add`, which prints the token), starts the server on a free loopback port
# (`--listen 127.0.0.1:0 --ready-file`, waiting up to 10 s for the port), registers an agent for a
# VM of that subscription (`netwatchd agent add`) and starts the real netwatch-agent for it
# ($(dirname netwatchd)/../agent/netwatch-agent, over https verified with the test certificate,
# capturing on lo into a fresh capture root), runs the test with NETWATCH_URL / NETWATCH_TOKEN /
# NETWATCH_SUB / NETWATCH_AGENT_VM / NETWATCH_CAPTURE_ROOT set, then stops the agent (SIGTERM) and
# the server and removes the folder.
# Every reply the SDK received is also checked against openapi.yaml (validate-replies.mjs).
# Exits 0 only when both pass. Installs the locked packages (npm ci) first when node_modules is
# missing or stale. The server's and the agent's logs are printed when something fails.
set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 <netwatchd-binary>" >&2
    exit 2
fi
case $1 in
    /*) bin=$1 ;;
    *) bin=$(pwd)/$1 ;;
esac
if [ ! -x "$bin" ]; then
    echo "run-sdk-test: $bin is not an executable" >&2
    exit 2
fi
agent_bin=$(dirname "$bin")/../agent/netwatch-agent
if [ ! -x "$agent_bin" ]; then
    echo "run-sdk-test: $agent_bin (the agent next to netwatchd's build) is not an executable" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 2
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error >&2 || exit 2
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/netwatch-sdk.XXXXXX") || exit 2
pid=""
agent_pid=""
# SIGTERM, 5 s to shut down cleanly, then SIGKILL.
stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null
        i=0
        while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$1" 2>/dev/null
        wait "$1" 2>/dev/null
    fi
}
cleanup() {
    # The agent first, so that the server does not log it dropping away mid-run.
    stop_pid "$agent_pid"
    stop_pid "$pid"
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() {
    echo "run-sdk-test: $*" >&2
    if [ -s "$dir/server.log" ]; then
        echo "--- netwatchd log (last 50 lines) ---" >&2
        tail -n 50 "$dir/server.log" >&2
    fi
    if [ -s "$dir/agent.log" ]; then
        echo "--- netwatch-agent log (last 30 lines) ---" >&2
        tail -n 30 "$dir/agent.log" >&2
    fi
    exit 1
}

sub=$(node -e 'console.log(require("crypto").randomUUID())') || fail "node is missing"
"$bin" token add --token-file "$dir/tokens" --subscriptions "$sub" --name sdk >"$dir/token.out" ||
    fail "'netwatchd token add' failed (exit $?)"
token=$(tail -n 1 "$dir/token.out" | tr -d '[:space:]')
[ -n "$token" ] || fail "'netwatchd token add' printed no token"

# HTTPS with a throw-away self-signed certificate for 127.0.0.1, trusted by this run only.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" \
    >"$dir/openssl.log" 2>&1 || fail "openssl could not make a test certificate"
"$bin" --listen 127.0.0.1:0 --ready-file "$dir/ready" --db "$dir/nw.db" --token-file "$dir/tokens" \
    --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" >"$dir/server.log" 2>&1 &
pid=$!

# The ready file holds the port (a bare number, or host:port); wait up to 10 s for it.
port=""
i=0
while [ $i -lt 100 ]; do
    if [ -s "$dir/ready" ]; then
        port=$(tr -d '[:space:]' <"$dir/ready" | sed -n 's/^.*[^0-9]\([0-9][0-9]*\)$/\1/p; s/^\([0-9][0-9]*\)$/\1/p')
        if [ -n "$port" ] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ]; then
            break
        fi
        port=""
    fi
    kill -0 "$pid" 2>/dev/null || fail "netwatchd exited before it was ready"
    sleep 0.1
    i=$((i + 1))
done
[ -n "$port" ] || fail "netwatchd wrote no port to its ready file within 10 s"

echo "run-sdk-test: netwatchd pid $pid on 127.0.0.1:$port, subscription $sub"

# A real agent for one VM of the subscription: registered (the token is printed on stdout), then
# started against the server over https, trusting the test certificate (its SAN is IP:127.0.0.1),
# capturing on the loopback interface into a capture root made here (the operator's to create).
# The test waits for it to show connected.
agent_vm="/subscriptions/$sub/resourceGroups/nwsdk-agents/providers/Microsoft.Compute/virtualMachines/sdk-agent-vm"
"$bin" agent add "$agent_vm" --db "$dir/nw.db" >"$dir/agent-token.out" 2>"$dir/agent-add.log" ||
    fail "'netwatchd agent add' failed (exit $?): $(cat "$dir/agent-add.log")"
tail -n 1 "$dir/agent-token.out" | tr -d '[:space:]' >"$dir/agent.token"
[ -s "$dir/agent.token" ] || fail "'netwatchd agent add' printed no token"
mkdir "$dir/captures" || fail "cannot create the capture root"
"$agent_bin" --server "https://127.0.0.1:$port" --ca-file "$dir/cert.pem" \
    --token-file "$dir/agent.token" --state-dir "$dir/agent-state" --capture-root "$dir/captures" \
    --interfaces lo >"$dir/agent.log" 2>&1 &
agent_pid=$!
echo "run-sdk-test: netwatch-agent pid $agent_pid for $agent_vm"

NETWATCH_URL="https://127.0.0.1:$port" NETWATCH_TOKEN="$token" NETWATCH_SUB="$sub" \
    NETWATCH_AGENT_VM="$agent_vm" NETWATCH_CAPTURE_ROOT="$dir/captures" \
    NODE_EXTRA_CA_CERTS="$dir/cert.pem" \
    NETWATCH_REPLIES="$dir/replies.jsonl" node --test sdk-test.mjs
test_status=$?

echo "run-sdk-test: checking the SDK's replies against openapi.yaml"
if [ -s "$dir/replies.jsonl" ]; then
    node validate-replies.mjs "$dir/replies.jsonl"
    replies_status=$?
else
    echo "run-sdk-test: no replies were recorded" >&2
    replies_status=1
fi

if [ $test_status -ne 0 ] || [ $replies_status -ne 0 ]; then
    fail "failed (sdk test exit $test_status, reply validation exit $replies_status)"
fi
exit 0
