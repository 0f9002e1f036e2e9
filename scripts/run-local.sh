#!/bin/sh
# `make run`: starts netwatchd on 127.0.0.1:8080 with an embedded SQLite database in ./var,
# creating a local API token on first use, and prints how to call it.
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
mkdir -p var
chmod 700 var
bin="$build/server/netwatchd"

# The token is shown once by `token add` and only its hash is kept in var/tokens; for local
# convenience make run also keeps the plain token in var/local-token (mode 0600).
if [ ! -s var/local-token ]; then
    umask 077
    "$bin" token add --token-file var/tokens --subscriptions '*' --name local > var/local-token
fi
token=$(cat var/local-token)
sub=00000000-0000-0000-0000-000000000001

cat <<MSG
netwatchd is starting on http://127.0.0.1:8080 (database ./var/netwatch.db)
API token (also in ./var/local-token):
  $token

Try it:
  TOKEN=\$(cat var/local-token)
  curl -s -X PUT -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"location":"westus2"}' \\
    'http://127.0.0.1:8080/subscriptions/$sub/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westus2?api-version=2024-07-01'
  curl -s -H "Authorization: Bearer \$TOKEN" \\
    'http://127.0.0.1:8080/subscriptions/$sub/providers/Microsoft.Network/networkWatchers?api-version=2024-07-01'

Stop with Ctrl-C.
MSG
exec "$bin" --listen 127.0.0.1:8080 --db var/netwatch.db --token-file var/tokens
