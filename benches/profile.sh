#!/usr/bin/env bash
# CPU profile of one proxy under wrk, in front of the static upstream of `MODE=nginx
# benches/load.sh` (issue #16): `perf record` with DWARF call graphs on the proxy's process
# for SECONDS (default 5) in the middle of a wrk run, then a flamegraph if inferno is on PATH
# (`cargo install inferno`), else the top symbols.
#
#   benches/profile.sh minimal_gateway            # benches/flamegraph-minimal_gateway.svg
#   benches/profile.sh gateway                    # every layer, no decryption
#   benches/profile.sh bare_proxy
#
# Needs perf (Debian: linux-perf) and wrk. The proxy gets the request load.sh sends.
set -euo pipefail
cd "$(dirname "$0")/.."

PROXY=${1:?usage: benches/profile.sh minimal_gateway|gateway|bare_proxy}
SECONDS_RECORDED=${SECONDS_RECORDED:-5}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-28121}
case "$PROXY" in minimal_gateway | gateway | bare_proxy) ;; *) echo "unknown proxy $PROXY" >&2; exit 2 ;; esac
command -v perf >/dev/null || { echo "perf is missing (Debian: apt-get install linux-perf)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing (Debian: apt-get install wrk)" >&2; exit 1; }

cargo build --release --example static_upstream --example "$PROXY"
bin=${CARGO_TARGET_DIR:-target}/release/examples
# shellcheck source=benches/support/common.sh
source benches/support/common.sh
start_static_upstream "$bin"
ALLOW_CIDRS=127.0.0.1/32 METRICS_ADDR=off RUST_LOG=warn LISTEN_ADDR=127.0.0.1:$PORT "$bin/$PROXY" >"$work/proxy.out" &
pids+=($!); proxy=$!
url="http://127.0.0.1:$PORT/v1/shape?table=items&offset=-1&where=done%3Dfalse"
auth='Authorization: Bearer alice-token'
for _ in $(seq 100); do curl -sf "$url" -H "$auth" >/dev/null && break; sleep 0.1; done
curl -sf "$url" -H "$auth" >/dev/null || { echo "no 200 from $PROXY" >&2; exit 1; }

wrk -t1 -c"$CONNECTIONS" -d"$((SECONDS_RECORDED + 4))s" -H "$auth" "$url" >"$work/wrk.out" &
pids+=($!); wrk=$!
sleep 2
perf record -F 999 -g --call-graph dwarf,16384 -p "$proxy" -o "$work/perf.data" -- sleep "$SECONDS_RECORDED" >/dev/null 2>&1
wait "$wrk" || true
grep Requests/sec "$work/wrk.out"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
if command -v inferno-collapse-perf >/dev/null && command -v inferno-flamegraph >/dev/null; then
    perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
    out=benches/flamegraph-$PROXY.svg
    inferno-flamegraph --minwidth 0.2 \
        --title "$PROXY under wrk -c$CONNECTIONS, static upstream, perf -F 999 dwarf, ${SECONDS_RECORDED} s, $(date -u +%F)" \
        <"$work/folded" >"$out"
    echo "flamegraph: $out"
else
    perf report -i "$work/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -40 | cut -c1-150
fi
