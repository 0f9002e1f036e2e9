#!/bin/sh
# `make run`: starts netwatchd on 127.0.0.1:8080 with an embedded SQLite database in ./var and a
# local netwatch-agent registered for this machine, creating an API token and the agent's
# credential on first use, and prints how to call it. Ctrl-C stops both.
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
mkdir -p var
mkdir -p -m 0750 var/captures # the agent writes only under its capture root, which must exist
chmod 700 var # 0711 once the agent's user needs to pass through (below)
bin="$build/server/netwatchd"
agent="$build/agent/netwatch-agent"
sub=00000000-0000-0000-0000-000000000001
vm="/subscriptions/$sub/resourceGroups/local/providers/Microsoft.Compute/virtualMachines/$(hostname)"

# The token is shown once by `token add` and only its hash is kept in var/tokens; for local
# convenience make run also keeps the plain token in var/local-token (mode 0600). Likewise the
# local agent's credential in var/agent-token.
umask 077
if [ ! -s var/local-token ]; then
    "$bin" token add --token-file var/tokens --subscriptions '*' --name local > var/local-token
fi
if [ ! -s var/agent-token ]; then
    "$bin" agent add "$vm" --db var/netwatch.db > var/agent-token
fi
token=$(cat var/local-token)

"$bin" --listen 127.0.0.1:8080 --db var/netwatch.db --token-file var/tokens &
server=$!
agent_pid=""
stop() {
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
    kill "$server" 2>/dev/null
    wait 2>/dev/null
}
trap stop INT TERM EXIT
sleep 0.5
# --resource-id: the VM the token was registered for, so a stale var/agent-token (made for
# another host name) is refused with 4004 rather than used.
# As root the agent runs as an unprivileged user with CAP_NET_RAW alone (docs/agent.md,
# "Privileges"): netwatch-agent if that user exists, else nobody. That user owns the agent's
# state and capture root, and may pass through var/ (0711: nothing in it can be listed, and its
# other files are 0600) to reach them. The token file stays root's: it is read before the drop.
user_opt=""
if [ "$(id -u)" -eq 0 ]; then
    agent_user=nobody
    id netwatch-agent >/dev/null 2>&1 && agent_user=netwatch-agent
    mkdir -p var/agent
    chown -R "$agent_user:$(id -gn "$agent_user")" var/agent var/captures
    chmod 711 var
    user_opt="--user $agent_user"
fi
# shellcheck disable=SC2086 # user_opt is empty or two words
"$agent" --server http://127.0.0.1:8080 --token-file var/agent-token --state-dir var/agent \
    --capture-root "$(pwd)/var/captures" --resource-id "$vm" $user_opt &
agent_pid=$!

cat <<MSG

netwatchd is running on http://127.0.0.1:8080 (database ./var/netwatch.db), with a local agent
for $vm
API token (also in ./var/local-token):
  $token

Try it:
  TOKEN=\$(cat var/local-token)
  curl -s -X PUT -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"location":"westus2"}' \\
    'http://127.0.0.1:8080/subscriptions/$sub/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westus2?api-version=2024-07-01'
  curl -s -H "Authorization: Bearer \$TOKEN" \\
    'http://127.0.0.1:8080/subscriptions/$sub/providers/Microsoft.Network/networkWatchers?api-version=2024-07-01'
  curl -s -H "Authorization: Bearer \$TOKEN" \\
    'http://127.0.0.1:8080/subscriptions/$sub/providers/Netwatch/agents?api-version=2024-07-01'

Stop with Ctrl-C.
MSG
wait "$server"
