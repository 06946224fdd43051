# Sourced by benchmark scripts (benches/profile.sh, benches/instructions.sh): a temporary
# directory and the pids of what the script starts, both cleaned up however it ends, and the
# static upstream of the nginx comparison (examples/static_upstream.rs).
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# So that the EXIT trap also runs when the script is interrupted or terminated.
trap 'exit 130' INT
trap 'exit 143' TERM

# start_static_upstream BIN_DIR: the static upstream on a free port, with a fresh
# ELECTRIC_SECRET; exports ELECTRIC_URL.
start_static_upstream() {
    export ELECTRIC_SECRET="bench-$RANDOM$RANDOM"
    LISTEN_ADDR=127.0.0.1:0 "$1/static_upstream" >"$work/static.out" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$work/static.out" ] && break; sleep 0.1; done
    ELECTRIC_URL=$(head -1 "$work/static.out")
    export ELECTRIC_URL
}
