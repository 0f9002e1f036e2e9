# shellcheck shell=bash
# Sourced by the benchmark scripts: one private work dir and the clean-up every run needs.
#
#   bench_workdir NAME [STOP_TRIES]
#
# makes $DIR (a fresh temp dir named after NAME) and $PIDS (append the pid of every child to
# stop), and installs the EXIT trap: each child in PIDS gets SIGTERM, then SIGKILL after
# STOP_TRIES tenths of a second (default 150); then each command in BENCH_EXIT_HOOKS runs (what
# the children no longer use: network namespaces); on failure the last 20 lines of each
# $DIR/*.log are shown; the dir is removed unless BENCH_KEEP=1.

# shellcheck disable=SC2317 # called from the EXIT trap
bench_stop_pid()
{
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < BENCH_STOP_TRIES; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # the EXIT trap
bench_cleanup()
{
    local rc=$? pid log hook
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        bench_stop_pid "$pid"
    done
    for hook in "${BENCH_EXIT_HOOKS[@]}"; do
        $hook || true
    done
    if [ "$rc" -ne 0 ]; then
        for log in "$DIR"/*.log; do
            [ -s "$log" ] || continue
            echo "---- last lines of $(basename "$log") ----" >&2
            tail -n 20 "$log" >&2
        done
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "work dir kept: $DIR" >&2
    else
        rm -rf "$DIR"
    fi
    exit "$rc"
}

bench_workdir()
{
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    PIDS=()
    BENCH_EXIT_HOOKS=()
    BENCH_STOP_TRIES=${2:-150}
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
