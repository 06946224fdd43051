#!/usr/bin/env bash
# Scale-out benchmark: CLIENTS (default 1000) clients of one tenant and OTHER_CLIENTS (default
# 100) of another, through deploy/run.sh's deployment (LB → two gateways → nginx cache →
# the stand-in), do an initial sync and then hold live long-polls while CHANGES (default 5)
# rows of the first tenant are written from outside (examples/scale_clients.rs). Run with the
# cache tier and without it (gateways straight to the stand-in), it reports the requests
# Electric saw per initial sync and per change, how long a change took to reach every client
# (median and max), and whether any client got another tenant's row or a hidden column.
#
#   benches/scale.sh
#   CLIENTS=200 OTHER_CLIENTS=20 CHANGES=3 MODES=cache benches/scale.sh
#
# Targets (issue 17): initial sync of 1,000 same-tenant clients <= 2 snapshot requests at
# Electric; <= 3 requests at Electric per change while they hold live polls; 0 cross-tenant
# rows or hidden columns.
set -euo pipefail
cd "$(dirname "$0")/.."

export CLIENTS=${CLIENTS:-1000}
export OTHER_CLIENTS=${OTHER_CLIENTS:-100}
export CHANGES=${CHANGES:-5}
MODES=${MODES:-"cache no-cache"}
export CARGO_PROFILE=${CARGO_PROFILE:-release}

# Every process holds a descriptor per client (the LB and the gateways two).
need=$((2 * (CLIENTS + OTHER_CLIENTS) + 256))
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt "$need" ]; then
    echo "open-file limit $(ulimit -n) is below the $need descriptors $CLIENTS + $OTHER_CLIENTS clients need" >&2
    exit 1
fi

case "$CARGO_PROFILE" in dev | test) profile_dir=debug ;; *) profile_dir=$CARGO_PROFILE ;; esac
cargo build --quiet --profile "$CARGO_PROFILE" --example standin --example gateway --example scale_clients
clients_bin=${CARGO_TARGET_DIR:-target}/$profile_dir/examples/scale_clients
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "date: $(date -u +%FT%TZ); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "clients: $CLIENTS of acme, $OTHER_CLIENTS of globex; $CHANGES changes of acme rows"
for mode in $MODES; do
    no_cache=""; [ "$mode" = no-cache ] && no_cache=1
    echo "== $mode"
    NO_CACHE=$no_cache deploy/run.sh run "$clients_bin" | tee "$out/$mode"
done

value() { grep -m1 "^$2" "$out/$1" | tr ' ' '\n' | awk -F= -v k="$3" '$1 == k {print $2}'; }
echo "== results"
printf '%-9s %18s %18s %14s %14s %14s %10s\n' mode snapshots_acme snapshots_globex per_change_max latency_p50_ms latency_max_ms leaks
for mode in $MODES; do
    leaks=$(( $(value "$mode" summary cross_tenant_rows) + $(value "$mode" summary hidden_columns) ))
    printf '%-9s %18s %18s %14s %14s %14s %10s\n' "$mode" \
        "$(value "$mode" 'initial tenant=acme' snapshot_requests)" \
        "$(value "$mode" 'initial tenant=globex' snapshot_requests)" \
        "$(value "$mode" summary requests_per_change_max)" \
        "$(value "$mode" summary latency_ms_median)" \
        "$(value "$mode" summary latency_ms_max)" "$leaks"
done
status=0
for mode in $MODES; do
    leaks=$(( $(value "$mode" summary cross_tenant_rows) + $(value "$mode" summary hidden_columns) ))
    [ "$leaks" -eq 0 ] || { echo "FAIL $mode: $leaks cross-tenant rows or hidden columns"; status=1; }
    [ "$(value "$mode" summary missing)" -eq 0 ] || { echo "FAIL $mode: some clients never got a change"; status=1; }
done
if [[ " $MODES " == *" cache "* ]]; then
    snapshots=$(value cache 'initial tenant=acme' snapshot_requests)
    per_change=$(value cache summary requests_per_change_max)
    echo "with the cache: $snapshots snapshot requests for $CLIENTS clients' initial sync (target <= 2), at most $per_change requests per change (target <= 3)"
    [ "$snapshots" -le 2 ] && [ "$per_change" -le 3 ] || status=1
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
