#!/usr/bin/env bash
# Installs the Debian packages that building and testing tower-electric need, when missing:
#   libclang-dev  pg_query's build script runs bindgen, which loads libclang (and clang's
#                 builtin headers) to read libpg_query's C header
#   postgresql    the tests start throwaway Postgres clusters (initdb, postgres)
#   nodejs, npm   the end-to-end test with Electric's TypeScript client
# Quick when everything is present; needs root (or sudo) only when something is missing.
#
#   scripts/install-deps.sh
set -euo pipefail

missing=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

installed libclang-dev || missing+=(libclang-dev)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

[ "${#missing[@]}" -eq 0 ] && exit 0

echo "== installing Debian packages: ${missing[*]}"
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt run to finish instead of failing on its lock.
apt_opts=(-o DPkg::Lock::Timeout=300 -q)
"${sudo[@]}" apt-get "${apt_opts[@]}" update >/dev/null
"${sudo[@]}" apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
