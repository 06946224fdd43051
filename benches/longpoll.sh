#!/usr/bin/env bash
# Idle live long-polls held through the example gateway: CLIENTS (default 10000) live
# requests from examples/longpoll_clients.rs, held by a stand-in process (its own, so the
# gateway's RSS is the gateway's), then the gateway's VmRSS from /proc/<pid>/status.
#
#   benches/longpoll.sh
#   CLIENTS=5000 UPSTREAM=http1 benches/longpoll.sh
#   UPSTREAM=http1 FIT=1 benches/longpoll.sh   # as many as the open-file limit lets it hold
#   UPSTREAM=http1 CLIENT_PROTOCOL=h2c benches/longpoll.sh
#
# UPSTREAM=h2 (default) has the gateway talk to the stand-in over h2c: one connection carries
# every held long-poll (per gateway worker). UPSTREAM=http1 opens one pooled upstream
# connection per held request. CLIENT_PROTOCOL=http1 (default): one client connection per
# long-poll; CLIENT_PROTOCOL=h2c: 500 long-polls per client connection, as a browser's live
# shapes share its HTTP/2 connection. HTTP/1.1 on both sides needs two descriptors per
# client in the gateway, plus its own (listeners, epoll, stdio).
#
# The script raises the open-file limit itself: the soft limit to the hard one, and the hard
# one (it runs as root) with `ulimit -Hn`, else `prlimit`, up to /proc/sys/fs/nr_open. Raising
# the hard limit needs CAP_SYS_RESOURCE; where the sandbox withholds it even from root, the
# hard limit stays, and the script says so, with what it would take. Then it stops, or with
# FIT=1 holds as many as fit (CLIENTS lowered to (limit - the gateway's own descriptors) / 2)
# and prints the RSS those cost and its extrapolation to CLIENTS.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-10000}
UPSTREAM=${UPSTREAM:-h2}
CLIENT_PROTOCOL=${CLIENT_PROTOCOL:-http1}
case "$CLIENT_PROTOCOL" in http1 | h2c) ;; *) echo "CLIENT_PROTOCOL is http1 or h2c, not $CLIENT_PROTOCOL" >&2; exit 2 ;; esac
HOLD_MS=${HOLD_MS:-80000}
# Below the ephemeral range (32768-60999 on Linux), which 20,000 client sockets here fill.
GATEWAY_PORT=${GATEWAY_PORT:-28111}

FIT=${FIT:-0}
METRICS_PORT=${METRICS_PORT:-28112}
per_client=0
if [ "$UPSTREAM" = http1 ]; then per_client=$((per_client + 1)); fi
if [ "$CLIENT_PROTOCOL" = http1 ]; then per_client=$((per_client + 1)); fi
# The gateway's own descriptors (stdio, epoll, its wakers, the listeners) come on top, and
# h2c's client connections, and h2 upstream connections (one per worker).
need=$((per_client * CLIENTS + CLIENTS / 500 + 64))

nr_open=$(cat /proc/sys/fs/nr_open)
want=$(( need < nr_open ? need : nr_open ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
    ulimit -Hn "$want" 2>/dev/null || prlimit --pid $$ --nofile="$want:$want" 2>/dev/null || true
fi
ulimit -Sn "$(ulimit -Hn)"
limit=$(ulimit -n)
requested=$CLIENTS
if [ "$limit" != unlimited ] && [ "$limit" -lt "$need" ]; then
    # Bit 24 of the effective capabilities: CAP_SYS_RESOURCE.
    caps=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
    has_resource=$(( (16#$caps >> 24) & 1 ))
    echo "open-file limit $limit (hard $(ulimit -Hn), fs.nr_open $nr_open) is below the $need descriptors the gateway needs for $CLIENTS clients over $UPSTREAM" >&2
    if [ "$has_resource" = 0 ]; then
        echo "it cannot be raised here: this root lacks CAP_SYS_RESOURCE (CapEff $caps), which raising a hard limit takes" >&2
    fi
    if [ "$FIT" != 1 ]; then
        echo "FIT=1 holds as many as fit instead" >&2
        exit 1
    fi
fi

cargo build --release --example standin --example gateway --example longpoll_clients
bin=${CARGO_TARGET_DIR:-target}/release/examples
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
# So that the EXIT trap also runs when the script is interrupted or terminated.
trap 'exit 130' INT
trap 'exit 143' TERM

export ELECTRIC_SECRET="bench-$RANDOM$RANDOM"
export TENANT_KEYS="acme=$(printf '1%.0s' {1..64}),globex=$(printf '2%.0s' {1..64})"
STAND_IN_LONG_POLL_HOLD_MS=$HOLD_MS STANDIN_REPORT_LIVE=1 "$bin/standin" >"$work/standin.out" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/standin.out" ] && break; sleep 0.1; done
export ELECTRIC_URL=$(head -1 "$work/standin.out")
if [ "$UPSTREAM" = h2 ]; then export ELECTRIC_HTTP2=1; fi
METRICS_ADDR=127.0.0.1:$METRICS_PORT RUST_LOG=warn LISTEN_ADDR=127.0.0.1:$GATEWAY_PORT "$bin/gateway" >"$work/gateway.out" &
pids+=($!); gateway=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GATEWAY_PORT/health" >/dev/null && break; sleep 0.1; done

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# The initial sync gives the handle and offset the live requests continue from.
base="/v1/shape?table=items&where=done%3Dfalse"
headers=$(curl -sf -D - -o /dev/null "http://127.0.0.1:$GATEWAY_PORT$base&offset=-1" -H 'Authorization: Bearer alice-token')
handle=$(awk -F': ' 'tolower($1) == "electric-handle" {print $2}' <<<"$headers" | tr -d '\r')
offset=$(awk -F': ' 'tolower($1) == "electric-offset" {print $2}' <<<"$headers" | tr -d '\r')
idle_rss=$(rss_kib "$gateway")
# What the gateway holds before the first long-poll (the initial sync's pooled upstream
# connection among them, which a long-poll reuses).
idle_fds=$(ls "/proc/$gateway/fd" | wc -l)
if [ "$limit" != unlimited ] && [ "$FIT" = 1 ]; then
    fit=$(( (limit - idle_fds - 4 - CLIENTS / 500) / (per_client > 0 ? per_client : 1) ))
    if [ "$fit" -lt "$CLIENTS" ]; then
        echo "holding $fit of the $CLIENTS requested: (limit $limit - ${idle_fds} descriptors of the idle gateway - 4 spare) / $per_client per client"
        CLIENTS=$fit
    fi
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "gateway idle (after one request): VmRSS ${idle_rss} KiB; clients $CLIENT_PROTOCOL, upstream $UPSTREAM; open-file limit $limit"

started=$(date +%s)
GATEWAY_ADDR=127.0.0.1:$GATEWAY_PORT CLIENTS=$CLIENTS CLIENT_PROTOCOL=$CLIENT_PROTOCOL \
    REQUEST_TARGET="$base&handle=$handle&offset=$offset&live=true" \
    "$bin/longpoll_clients" >"$work/clients.out" &
pids+=($!)
held=0
while [ $(( $(date +%s) - started )) -lt $(( HOLD_MS / 1000 - 5 )) ]; do
    held=$(awk '/^live_in_flight/ {n = $2} END {print n + 0}' "$work/standin.out")
    [ "$held" -ge "$CLIENTS" ] && break
    sleep 0.5
done
sleep 1
rss=$(rss_kib "$gateway")
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$gateway/status")
answered=$(awk '/^answered/ {n = $2} END {print n + 0}' "$work/clients.out")
fds=$(ls "/proc/$gateway/fd" | wc -l)
echo "held by the stand-in: $held of $CLIENTS after $(( $(date +%s) - started )) s; answered early: $answered; gateway fds: $fds"
awk -v rss="$rss" -v idle="$idle_rss" -v hwm="$hwm" -v n="$held" 'BEGIN {
    printf "gateway VmRSS with %d held long-polls: %.1f MiB (target <= 150 MiB), VmHWM %.1f MiB\n", n, rss / 1024, hwm / 1024
    if (n > 0) printf "per held long-poll: %.1f KiB ((RSS - idle RSS) / held)\n", (rss - idle) / n
}'
if [ "$CLIENTS" -lt "$requested" ] && [ "$held" -gt 0 ]; then
    awk -v rss="$rss" -v idle="$idle_rss" -v n="$held" -v want="$requested" 'BEGIN {
        printf "extrapolated to %d: %.1f MiB (idle RSS + %d x the per-poll cost above; not measured)\n", want, (idle + (rss - idle) / n * want) / 1024, want
    }'
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
