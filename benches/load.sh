#!/usr/bin/env bash
# Load benchmark, two modes, both driven alternately by wrk with the same settings.
#
# MODE=bare (default): the example gateway (four layers) against a bare hyper-util passthrough
# proxy, both in front of the same Electric stand-in process.
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
#
# MODE=nginx (issue #16): nginx (Debian nginx-light, benches/nginx.conf: `allow 127.0.0.1;
# deny all;`, the secret added to the upstream query, keep-alive upstream connections,
# proxy_buffering off, one worker per core, access_log off) against the minimal gateway
# (examples/minimal_gateway.rs: IpAllowLayer + ApiTokenLayer::inject on ElectricUpstream) and
# against the full example gateway (every layer; no TENANT_KEYS, so no decryption), all three
# in front of the same static upstream (examples/static_upstream.rs: one fixed snapshot, the
# secret checked), all three sent the same request; the bare proxy (examples/bare_proxy.rs,
# no layers) too, to show how much of a gap is the layers'. Throughput only; prints each one's
# req/s, minimal/nginx, full/nginx and bare/nginx, and CPU time per request from /proc
# (nginx: master and workers).
#
#   MODE=nginx benches/load.sh
#   MODE=nginx ROUNDS=5 PIN=1 benches/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${MODE:-bare}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
LAT_DURATION=${LAT_DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
LAT_CONNECTIONS=${LAT_CONNECTIONS:-1}; export LAT_CONNECTIONS
THREADS=${THREADS:-1}
# Below the ephemeral range (32768-60999 on Linux): a client socket of an earlier run (wrk, the
# proxies' pools) left on one of these ports would make the next bind fail.
GATEWAY_PORT=${GATEWAY_PORT:-28101}
BARE_PORT=${BARE_PORT:-28102}
MINIMAL_PORT=${MINIMAL_PORT:-28103}
NGINX_PORT=${NGINX_PORT:-28104}
METRICS_PORT=${METRICS_PORT:-28105}
PIN=${PIN:-0}
case "$MODE" in bare | nginx) ;; *) echo "MODE is bare or nginx, not $MODE" >&2; exit 2 ;; esac

if ! command -v wrk >/dev/null; then
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if [ "$MODE" = nginx ] && [ ! -x "$NGINX" ]; then
    apt-get install -y nginx-light >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y nginx-light >/dev/null; }
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
if [ "$MODE" = nginx ]; then
    cargo build --release --example static_upstream --example minimal_gateway --example gateway --example bare_proxy
else
    cargo build --release --example standin --example gateway --example bare_proxy
fi
bin=${CARGO_TARGET_DIR:-target}/release/examples
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # nginx's master stops its workers before it exits: wait for it (and the others), briefly.
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    rm -rf "$work"
}
trap cleanup EXIT
# So that the EXIT trap also runs when the script is interrupted or terminated.
trap 'exit 130' INT
trap 'exit 143' TERM

pin() { if [ "$PIN" = 1 ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }
wait_health() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# CPU ticks (user + system) of a process and of its children (nginx's workers).
ticks() {
    local pid=$1 total child
    total=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
hz=$(getconf CLK_TCK)
# wrk's latency figures (10.5us, 1.2ms, 2s) in microseconds.
to_us() { awk -v t="$1" 'BEGIN { n = t + 0; if (t ~ /us$/) print n; else if (t ~ /ms$/) print n * 1000; else if (t ~ /s$/) print n * 1000000; else print n }'; }

# run PID UPSTREAM_PID NAME CONNECTIONS DURATION URL [HEADER]: prints
# "rps p50_us p99_us proxy_cpu_us_per_req upstream_cpu_us_per_req"
run() {
    local pid=$1 upstream=$2 name=$3 conns=$4 duration=$5 url=$6 header=${7:-}
    local p0 s0 out
    p0=$(ticks "$pid"); s0=$(ticks "$upstream")
    if [ -n "$header" ]; then
        out=$(pin 0 wrk -t"$THREADS" -c"$conns" -d"$duration" --latency -H "$header" "$url")
    else
        out=$(pin 0 wrk -t"$THREADS" -c"$conns" -d"$duration" --latency "$url")
    fi
    local p1 s1 requests rps p50 p99 errors
    p1=$(ticks "$pid"); s1=$(ticks "$upstream")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    if [ -n "$errors" ]; then echo "$name: $errors" >&2; fi
    echo "$rps $p50 $p99 $(( (p1 - p0) * 1000000 / hz / requests )) $(( (s1 - s0) * 1000000 / hz / requests ))"
}

machine() { echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load before: $(cut -d' ' -f1-3 /proc/loadavg), pinned: $PIN"; }

export ELECTRIC_SECRET="bench-$RANDOM$RANDOM"

if [ "$MODE" = nginx ]; then
    LISTEN_ADDR=127.0.0.1:0 pin 0 "$bin/static_upstream" >"$work/static.out" &
    pids+=($!); upstream=$!
    for _ in $(seq 100); do [ -s "$work/static.out" ] && break; sleep 0.1; done
    export ELECTRIC_URL=$(head -1 "$work/static.out")
    upstream_addr=${ELECTRIC_URL#http://}

    # nginx in the foreground (daemon off), its prefix, config and temp files in $work; its
    # workers drop root for nobody, who may pass through $work to their own temp directory.
    mkdir -p "$work/nginx/tmp"
    chmod 711 "$work" "$work/nginx"
    user_line=""
    if [ "$(id -u)" -eq 0 ]; then
        user_line="user nobody nogroup;"
        chown nobody:nogroup "$work/nginx/tmp"
    fi
    sed -e "s|@DIR@|$work/nginx|g" -e "s|@USER@|$user_line|" -e "s|@WORKERS@|$(nproc)|" \
        -e "s|@UPSTREAM@|$upstream_addr|g" -e "s|@PORT@|$NGINX_PORT|" \
        -e "s|@SECRET@|$ELECTRIC_SECRET|" benches/nginx.conf >"$work/nginx/nginx.conf"
    chmod 600 "$work/nginx/nginx.conf"
    pin 1 "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
    pids+=($!); nginx=$!

    ALLOW_CIDRS=127.0.0.1/32 LISTEN_ADDR=127.0.0.1:$MINIMAL_PORT pin 1 "$bin/minimal_gateway" >"$work/minimal.out" &
    pids+=($!); minimal=$!
    # Every layer of the example gateway; without TENANT_KEYS in front of ELECTRIC_URL it
    # decrypts nothing (values pass as stored).
    ALLOW_CIDRS=127.0.0.1/32 METRICS_ADDR=127.0.0.1:$METRICS_PORT RUST_LOG=warn \
        LISTEN_ADDR=127.0.0.1:$GATEWAY_PORT pin 1 "$bin/gateway" >"$work/gateway.out" &
    pids+=($!); gateway=$!
    # And the bare hyper-util proxy (no layers): how much of a gap to nginx is the layers'.
    LISTEN_ADDR=127.0.0.1:$BARE_PORT pin 1 "$bin/bare_proxy" >"$work/bare.out" &
    pids+=($!); bare=$!
    wait_health "http://127.0.0.1:$GATEWAY_PORT/health"

    path="/v1/shape?table=items&offset=-1&where=done%3Dfalse"
    auth='Authorization: Bearer alice-token'
    nginx_url="http://127.0.0.1:$NGINX_PORT$path"
    minimal_url="http://127.0.0.1:$MINIMAL_PORT$path"
    full_url="http://127.0.0.1:$GATEWAY_PORT$path"
    bare_url="http://127.0.0.1:$BARE_PORT$path"
    for url in "$nginx_url" "$minimal_url" "$full_url" "$bare_url"; do
        for _ in $(seq 100); do curl -sf "$url" -H "$auth" >/dev/null && break; sleep 0.1; done
        curl -sf "$url" -H "$auth" >/dev/null || { echo "no 200 from $url" >&2; exit 1; }
    done
    # A client's own secret must not reach the upstream (it answers 401 if it does).
    for url in "$nginx_url" "$minimal_url"; do
        curl -sf "$url&secret=client" >/dev/null || { echo "$url passed a client secret on" >&2; exit 1; }
    done

    machine
    echo "nginx $("$NGINX" -v 2>&1 | cut -d/ -f2), $(nproc) workers; static upstream $ELECTRIC_URL; request $path with '$auth'"
    echo "warm-up"
    for target in "$nginx $nginx_url" "$minimal $minimal_url" "$gateway $full_url" "$bare $bare_url"; do
        set -- $target
        run "$1" "$upstream" warm-up "$CONNECTIONS" 2s "$2" "$auth" >/dev/null
    done
    printf '%-5s %9s %9s %9s %9s %10s %10s %10s %9s %9s %9s %9s %10s\n' \
        round nginx_rps min_rps full_rps bare_rps min/nginx full/nginx bare/nginx nginx_cpu min_cpu full_cpu bare_cpu static_cpu
    sum_min=0; sum_full=0; sum_bare=0
    for round in $(seq "$ROUNDS"); do
        # nginx first in odd rounds, last in even ones: neither side always runs on a warmer machine.
        if [ $((round % 2)) = 1 ]; then
            read -r n_rps _ _ n_cpu s_cpu < <(run "$nginx" "$upstream" nginx "$CONNECTIONS" "$DURATION" "$nginx_url" "$auth")
        fi
        read -r m_rps _ _ m_cpu _ < <(run "$minimal" "$upstream" minimal "$CONNECTIONS" "$DURATION" "$minimal_url" "$auth")
        read -r f_rps _ _ f_cpu _ < <(run "$gateway" "$upstream" full "$CONNECTIONS" "$DURATION" "$full_url" "$auth")
        read -r b_rps _ _ b_cpu _ < <(run "$bare" "$upstream" bare "$CONNECTIONS" "$DURATION" "$bare_url" "$auth")
        if [ $((round % 2)) = 0 ]; then
            read -r n_rps _ _ n_cpu s_cpu < <(run "$nginx" "$upstream" nginx "$CONNECTIONS" "$DURATION" "$nginx_url" "$auth")
        fi
        r_min=$(awk -v a="$m_rps" -v b="$n_rps" 'BEGIN { printf "%.3f", a / b }')
        r_full=$(awk -v a="$f_rps" -v b="$n_rps" 'BEGIN { printf "%.3f", a / b }')
        sum_min=$(awk -v s="$sum_min" -v r="$r_min" 'BEGIN { print s + r }')
        r_bare=$(awk -v a="$b_rps" -v b="$n_rps" 'BEGIN { printf "%.3f", a / b }')
        sum_full=$(awk -v s="$sum_full" -v r="$r_full" 'BEGIN { print s + r }')
        sum_bare=$(awk -v s="$sum_bare" -v r="$r_bare" 'BEGIN { print s + r }')
        printf '%-5s %9s %9s %9s %9s %10s %10s %10s %9s %9s %9s %9s %10s\n' \
            "$round" "$n_rps" "$m_rps" "$f_rps" "$b_rps" "$r_min" "$r_full" "$r_bare" "$n_cpu" "$m_cpu" "$f_cpu" "$b_cpu" "$s_cpu"
    done
    echo "(cpu: CPU time per request in us, user + system, from /proc/<pid>/stat; nginx: master and workers; static_cpu: the upstream's, in nginx's run)"
    awk -v a="$sum_min" -v b="$sum_full" -v c="$sum_bare" -v n="$ROUNDS" 'BEGIN {
        printf "mean minimal gateway / nginx: %.3f (target >= 1.0)\n", a / n
        printf "mean full example gateway / nginx: %.3f (target >= 0.7)\n", b / n
        printf "mean bare hyper-util proxy / nginx: %.3f (no target: hyper server and hyper-util client, no layers)\n", c / n
    }'
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
    exit 0
fi

export TENANT_KEYS="acme=$(printf '1%.0s' {1..64}),globex=$(printf '2%.0s' {1..64})"
STAND_IN_LONG_POLL_HOLD_MS=0 STANDIN_QUERY_FILE="$work/query" pin 0 "$bin/standin" >"$work/standin.out" &
pids+=($!); standin=$!
for _ in $(seq 100); do [ -s "$work/standin.out" ] && break; sleep 0.1; done
export ELECTRIC_URL=$(head -1 "$work/standin.out")
METRICS_ADDR=127.0.0.1:$METRICS_PORT RUST_LOG=warn LISTEN_ADDR=127.0.0.1:$GATEWAY_PORT pin 1 "$bin/gateway" >"$work/gateway.out" &
pids+=($!); gateway=$!
LISTEN_ADDR=127.0.0.1:$BARE_PORT pin 1 "$bin/bare_proxy" >"$work/bare.out" &
pids+=($!); bare=$!
wait_health "http://127.0.0.1:$GATEWAY_PORT/health"

gateway_url="http://127.0.0.1:$GATEWAY_PORT/v1/shape?table=items&offset=-1&where=done%3Dfalse"
auth='Authorization: Bearer alice-token'
curl -sf "$gateway_url" -H "$auth" >/dev/null
for _ in $(seq 50); do [ -s "$work/query" ] && break; sleep 0.1; done
bare_url="http://127.0.0.1:$BARE_PORT/v1/shape?$(cat "$work/query")"
curl -sf "$bare_url" >/dev/null

machine
echo "warm-up"; run "$gateway" "$standin" gateway "$CONNECTIONS" 2s "$gateway_url" "$auth" >/dev/null; run "$bare" "$standin" bare "$CONNECTIONS" 2s "$bare_url" >/dev/null

printf '%-8s %-5s %10s %9s %9s %12s %12s %13s %13s\n' phase round gw_rps bare_rps ratio gw_cpu_us bare_cpu_us standin_gw_us standin_bare_us
sum_ratio=0
for round in $(seq "$ROUNDS"); do
    read -r g_rps _ _ g_cpu g_up < <(run "$gateway" "$standin" gateway "$CONNECTIONS" "$DURATION" "$gateway_url" "$auth")
    read -r b_rps _ _ b_cpu b_up < <(run "$bare" "$standin" bare "$CONNECTIONS" "$DURATION" "$bare_url")
    ratio=$(awk -v g="$g_rps" -v b="$b_rps" 'BEGIN { printf "%.3f", g / b }')
    sum_ratio=$(awk -v s="$sum_ratio" -v r="$ratio" 'BEGIN { print s + r }')
    printf '%-8s %-5s %10s %9s %9s %12s %12s %13s %13s\n' throughput "$round" "$g_rps" "$b_rps" "$ratio" "$g_cpu" "$b_cpu" "$g_up" "$b_up"
done

printf '%-8s %-5s %9s %9s %9s %9s %11s %11s\n' phase round gw_p50 bare_p50 gw_p99 bare_p99 added_p50 added_p99
sum_p50=0; sum_p99=0
for round in $(seq "$ROUNDS"); do
    read -r _ g50 g99 _ _ < <(run "$gateway" "$standin" gateway "$LAT_CONNECTIONS" "$LAT_DURATION" "$gateway_url" "$auth")
    read -r _ b50 b99 _ _ < <(run "$bare" "$standin" bare "$LAT_CONNECTIONS" "$LAT_DURATION" "$bare_url")
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
