#!/usr/bin/env bash
# Builds every fuzz target and runs each, one after the other, for a bounded time.
#
#   fuzz/run.sh [seconds-per-target] [target...]
#
# FUZZ_SEED=<n> fixes libFuzzer's random seed, so that a run from the committed seeds explores
# the same inputs every time (CI uses it: a short smoke run must not fail by chance).
#
# Seeds under fuzz/seeds/<target>/ are copied into fuzz/corpus/<target>/ (kept between runs,
# ignored by git) first. Exits non-zero if any target found a crash, a hang or a leak; the
# input is then in fuzz/artifacts/<target>/, and `cargo fuzz run <target> <file>` replays it.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-30}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(query_roundtrip policy_where policy_post_body ip_chain transform_stream gatekeeper_shape)
fi

# cargo-fuzz passes -Z flags (sanitizers, coverage instrumentation) that only a nightly
# compiler accepts. No nightly toolchain can be fetched on our machines, so the stable
# compiler is told to accept them with RUSTC_BOOTSTRAP=1, for these builds only.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo fuzz build

failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    if [ -d "seeds/$target" ]; then
        cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
    fi
    echo "== $target: ${seconds}s"
    # -timeout: one input taking 10 s is a hang; -max_len: room past the 4 KiB where limit.
    if ! cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 ${FUZZ_SEED:+-seed="$FUZZ_SEED"}; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz: findings in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a finding"
