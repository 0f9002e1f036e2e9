#!/bin/sh
# Lints the API contract, openapi.yaml at the repository root, with Spectral (pinned in
# package.json) and the ruleset in .spectral.yaml beside this script: Spectral's recommended
# OpenAPI rules plus netwatch's own. Exits non-zero when any rule of error severity fails.
#   usage: tests/node/lint-openapi.sh [spec]      (default: openapi.yaml at the repository root)
# Installs the locked packages (npm ci) first when node_modules is missing or stale.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
spec=${1:-$here/../../openapi.yaml}
spec=$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")
cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
fi
exec ./node_modules/.bin/spectral lint --ruleset .spectral.yaml --fail-severity error "$spec"
