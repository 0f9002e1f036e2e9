#!/bin/sh
# Installs the Debian packages netwatch needs to build, run and test, and only those missing.
# systemd: systemd-analyze checks the agent's unit (dist/systemd); util-linux's setpriv, which
# the privilege test uses, is in every Debian.
# Runs apt-get as root, or through sudo when started by another user.
set -eu

PKGS="build-essential cmake pkg-config clang-format \
libmicrohttpd-dev libsqlite3-dev libjansson-dev uuid-dev libssl-dev check \
libwslay-dev libpcap-dev libcap-dev libcurl4-openssl-dev \
wrk iproute2 procps tcpdump jq curl ca-certificates openssl systemd"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js runs the contract linter and the official Azure SDK test. A Node.js from elsewhere
# (with its own npm) is kept; otherwise Debian's nodejs and npm are installed.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: missing packages:$missing; run as root or install sudo" >&2
    exit 1
fi
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
