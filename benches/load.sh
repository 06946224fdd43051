#!/usr/bin/env bash
# Load benchmark: the example gateway (four layers) against a bare hyper-util passthrough
# proxy, both in front of the same Electric stand-in process, driven alternately by wrk.
#
#   benches/load.sh                      # 3 rounds x 10 s each, throughput and latency
#   ROUNDS=5 DURATION=20s benches/load.sh
#   PIN=1 benches/load.sh                # proxy on CPU 1, stand-in and wrk on CPU 0
#
# Throughput: CONNECTIONS (default 32) connections, as fast as they go. Latency: LAT_CONNECTIONS
# (default 1) connection in a closed loop, a moderate load (about half the gateway's peak rate on
# 2 cores; 4 connections already saturate them). The gateway gets a realistic request
# (Bearer token, client where); the bare proxy gets the query the gateway's policy composes
# (captured from the stand-in), plus the same secret, so that the upstream work is equal.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
LAT_DURATION=${LAT_DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
LAT_CONNECTIONS=${LAT_CONNECTIONS:-1}; export LAT_CONNECTIONS
THREADS=${THREADS:-1}
GATEWAY_PORT=${GATEWAY_PORT:-38101}
BARE_PORT=${BARE_PORT:-38102}
PIN=${PIN:-0}

if ! command -v wrk >/dev/null; then
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
cargo build --release --example standin --example gateway --example bare_proxy
bin=${CARGO_TARGET_DIR:-target}/release/examples
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

pin() { if [ "$PIN" = 1 ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

export ELECTRIC_SECRET="bench-$RANDOM$RANDOM"
export TENANT_KEYS="acme=$(printf '1%.0s' {1..64}),globex=$(printf '2%.0s' {1..64})"
STAND_IN_LONG_POLL_HOLD_MS=0 STANDIN_QUERY_FILE="$work/query" pin 0 "$bin/standin" >"$work/standin.out" &
pids+=($!); standin=$!
for _ in $(seq 100); do [ -s "$work/standin.out" ] && break; sleep 0.1; done
export ELECTRIC_URL=$(head -1 "$work/standin.out")
RUST_LOG=warn LISTEN_ADDR=127.0.0.1:$GATEWAY_PORT pin 1 "$bin/gateway" >"$work/gateway.out" &
pids+=($!); gateway=$!
LISTEN_ADDR=127.0.0.1:$BARE_PORT pin 1 "$bin/bare_proxy" >"$work/bare.out" &
pids+=($!); bare=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GATEWAY_PORT/health" >/dev/null && break; sleep 0.1; done

gateway_url="http://127.0.0.1:$GATEWAY_PORT/v1/shape?table=items&offset=-1&where=done%3Dfalse"
auth='Authorization: Bearer alice-token'
curl -sf "$gateway_url" -H "$auth" >/dev/null
for _ in $(seq 50); do [ -s "$work/query" ] && break; sleep 0.1; done
bare_url="http://127.0.0.1:$BARE_PORT/v1/shape?$(cat "$work/query")"
curl -sf "$bare_url" >/dev/null

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# wrk's latency figures (10.5us, 1.2ms, 2s) in microseconds.
to_us() { awk -v t="$1" 'BEGIN { n = t + 0; if (t ~ /us$/) print n; else if (t ~ /ms$/) print n * 1000; else if (t ~ /s$/) print n * 1000000; else print n }'; }

# run NAME CONNECTIONS DURATION URL [HEADER]: prints "rps p50_us p99_us proxy_cpu_us_per_req standin_cpu_us_per_req"
run() {
    local name=$1 conns=$2 duration=$3 url=$4 header=${5:-} pid
    pid=$([ "$name" = gateway ] && echo "$gateway" || echo "$bare")
    local p0 s0 out
    p0=$(ticks "$pid"); s0=$(ticks "$standin")
    if [ -n "$header" ]; then
        out=$(pin 0 wrk -t"$THREADS" -c"$conns" -d"$duration" --latency -H "$header" "$url")
    else
        out=$(pin 0 wrk -t"$THREADS" -c"$conns" -d"$duration" --latency "$url")
    fi
    local p1 s1 requests rps p50 p99 errors
    p1=$(ticks "$pid"); s1=$(ticks "$standin")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    if [ -n "$errors" ]; then echo "$name: $errors" >&2; fi
    echo "$rps $p50 $p99 $(( (p1 - p0) * 1000000 / hz / requests )) $(( (s1 - s0) * 1000000 / hz / requests ))"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load before: $(cut -d' ' -f1-3 /proc/loadavg), pinned: $PIN"
echo "warm-up"; run gateway "$CONNECTIONS" 2s "$gateway_url" "$auth" >/dev/null; run bare "$CONNECTIONS" 2s "$bare_url" >/dev/null

printf '%-8s %-5s %10s %9s %9s %12s %12s\n' phase round gw_rps bare_rps ratio gw_cpu_us bare_cpu_us
sum_ratio=0
for round in $(seq "$ROUNDS"); do
    read -r g_rps _ _ g_cpu _ < <(run gateway "$CONNECTIONS" "$DURATION" "$gateway_url" "$auth")
    read -r b_rps _ _ b_cpu _ < <(run bare "$CONNECTIONS" "$DURATION" "$bare_url")
    ratio=$(awk -v g="$g_rps" -v b="$b_rps" 'BEGIN { printf "%.3f", g / b }')
    sum_ratio=$(awk -v s="$sum_ratio" -v r="$ratio" 'BEGIN { print s + r }')
    printf '%-8s %-5s %10s %9s %9s %12s %12s\n' throughput "$round" "$g_rps" "$b_rps" "$ratio" "$g_cpu" "$b_cpu"
done

printf '%-8s %-5s %9s %9s %9s %9s %11s %11s\n' phase round gw_p50 bare_p50 gw_p99 bare_p99 added_p50 added_p99
sum_p50=0; sum_p99=0
for round in $(seq "$ROUNDS"); do
    read -r _ g50 g99 _ _ < <(run gateway "$LAT_CONNECTIONS" "$LAT_DURATION" "$gateway_url" "$auth")
    read -r _ b50 b99 _ _ < <(run bare "$LAT_CONNECTIONS" "$LAT_DURATION" "$bare_url")
    a50=$(awk -v g="$g50" -v b="$b50" 'BEGIN { print g - b }')
    a99=$(awk -v g="$g99" -v b="$b99" 'BEGIN { print g - b }')
    sum_p50=$(awk -v s="$sum_p50" -v a="$a50" 'BEGIN { print s + a }')
    sum_p99=$(awk -v s="$sum_p99" -v a="$a99" 'BEGIN { print s + a }')
    printf '%-8s %-5s %9s %9s %9s %9s %11s %11s\n' latency "$round" "$g50" "$b50" "$g99" "$b99" "$a50" "$a99"
done
awk -v r="$sum_ratio" -v p50="$sum_p50" -v p99="$sum_p99" -v n="$ROUNDS" 'BEGIN {
    printf "mean throughput ratio gateway/bare: %.3f (target >= 0.90)\n", r / n
    printf "mean added latency at %s connections: p50 %.0f us (target <= 100), p99 %.0f us (target <= 1000)\n", ENVIRON["LAT_CONNECTIONS"], p50 / n, p99 / n
}'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
