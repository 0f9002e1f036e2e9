#!/bin/sh
# dist.systemd_unit: the agent's systemd unit, checked with systemd's own tools and the agent:
#   - `systemd-analyze verify` accepts it without a single warning (a mistyped key is one);
#   - `systemd-analyze security --offline` rates its exposure at most 3.5 (of 10);
#   - it grants CAP_NET_RAW and nothing else, with no-new-privs, to a user of its own;
#   - the agent accepts every option of its ExecStart.
# Usage: check-systemd-unit.sh UNIT NETWATCH_AGENT
set -eu
unit=$1
agent=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
bad() {
    echo "FAIL dist.systemd_unit: $*" >&2
    fail=1
}

# verify checks that ExecStart's binary exists: point it at the one just built.
sed "s|/usr/local/bin/netwatch-agent|$agent|" "$unit" > "$tmp/netwatch-agent.service"
if ! systemd-analyze verify "$tmp/netwatch-agent.service" > "$tmp/verify.log" 2>&1; then
    bad "systemd-analyze verify failed: $(cat "$tmp/verify.log")"
elif [ -s "$tmp/verify.log" ]; then
    bad "systemd-analyze verify warned: $(cat "$tmp/verify.log")"
fi
if ! systemd-analyze security --offline=yes --threshold=35 "$tmp/netwatch-agent.service" \
    > "$tmp/security.log" 2>&1; then
    bad "exposure above 3.5: $(grep -i overall "$tmp/security.log")"
fi
grep -i overall "$tmp/security.log" || true

for line in 'User=netwatch-agent' 'AmbientCapabilities=CAP_NET_RAW' \
    'CapabilityBoundingSet=CAP_NET_RAW' 'NoNewPrivileges=yes' 'UMask=0027' \
    'ReadWritePaths=/var/captures' 'StateDirectory=netwatch-agent'; do
    grep -qx "$line" "$unit" || bad "no line '$line'"
done
# One line each: a second AmbientCapabilities= would add to the first.
for key in AmbientCapabilities CapabilityBoundingSet User ExecStart; do
    n=$(grep -c "^$key=" "$unit" || true)
    [ "$n" -eq 1 ] || bad "$n lines $key=, want 1"
done

# The agent parses ExecStart's options (with the specifiers filled in); --help stops it there.
args=$(sed -n 's|^ExecStart=[^ ]* ||p' "$unit" | sed "s|%d|$tmp|g; s|%S|$tmp|g")
# shellcheck disable=SC2086 # the options are split as systemd splits them (no quotes in them)
if ! "$agent" $args --help > "$tmp/help.log" 2>&1; then
    bad "the agent refuses ExecStart's options: $(cat "$tmp/help.log")"
fi

[ "$fail" -eq 0 ] && echo "ok dist.systemd_unit"
exit "$fail"
