#!/usr/bin/env bash
# Instructions per request of the minimal and the full example gateway, counted by callgrind
# (Debian's valgrind, installed when missing): the noise-free A/B that requests/s on a shared
# 2-core VM cannot give (benches/load.sh rounds move by 10% and more; these counts move by
# well under 1% between runs of one build).
#
#   benches/instructions.sh                # both gateways, 10 s each
#   DURATION=20s benches/instructions.sh
#   GATEWAYS=minimal_gateway benches/instructions.sh
#   BIN_DIR=/tmp/old benches/instructions.sh   # binaries built from another commit
#
# Each gateway runs under callgrind with one worker (WORKERS=1), in front of the static
# upstream of the nginx comparison (examples/static_upstream.rs), and is sent the request of
# `MODE=nginx benches/load.sh` by wrk over 4 connections. Printed: requests answered, and the
# instructions of hyper's connection future (`Dispatcher::poll_catch`, inclusive: the
# server, every layer, the upstream client, the allocator) per request, which leaves out
# start-up. User space only: system calls are counted as the instructions that make them.
# Under callgrind a gateway runs some 50 times slower, so the rates wrk reports mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
GATEWAYS=${GATEWAYS:-minimal_gateway gateway}
PORT=${PORT:-28121}
METRICS_PORT=${METRICS_PORT:-28122}

if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
    apt-get install -y valgrind >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }
fi
if ! command -v wrk >/dev/null; then
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --example static_upstream --example minimal_gateway --example gateway
    BIN_DIR=${CARGO_TARGET_DIR:-target}/release/examples
fi

# shellcheck source=benches/support/common.sh
source benches/support/common.sh
start_static_upstream "$BIN_DIR"

path="/v1/shape?table=items&offset=-1&where=done%3Dfalse"
auth='Authorization: Bearer alice-token'
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binaries: $BIN_DIR; request $path with '$auth'; wrk -c4 for $DURATION each"
for gateway in $GATEWAYS; do
    out="$work/$gateway.callgrind"
    WORKERS=1 ALLOW_CIDRS=127.0.0.1/32 RUST_LOG=warn LISTEN_ADDR=127.0.0.1:$PORT \
        METRICS_ADDR=127.0.0.1:$METRICS_PORT \
        valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN_DIR/$gateway" >"$work/$gateway.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    url="http://127.0.0.1:$PORT$path"
    for _ in $(seq 300); do curl -sf -o /dev/null -H "$auth" "$url" && break; sleep 0.1; done
    curl -sf -o /dev/null -H "$auth" "$url" || { echo "no 200 from $gateway under callgrind" >&2; exit 1; }
    requests=$(wrk -t1 -c4 -d"$DURATION" -H "$auth" "$url" | awk '/requests in/ {print $1}')
    # callgrind writes its counts when the program ends; the gateways end on SIGTERM.
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    per_connection=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
        awk '/Dispatcher<D,Bs,I,T>::poll_catch/ && !seen { gsub(",", "", $1); print $1; seen = 1 }')
    if [ -z "$per_connection" ] || [ "${requests:-0}" -eq 0 ]; then
        echo "$gateway: no counts (see $work/$gateway.log)" >&2
        exit 1
    fi
    # The two answered warm-up requests above were counted too.
    echo "$gateway: $requests requests, $(( per_connection / (requests + 2) )) instructions per request"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
