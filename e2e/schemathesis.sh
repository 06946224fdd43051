#!/usr/bin/env bash
# Electric's OpenAPI spec as a contract: schemathesis generates GET /v1/shape requests from
# tests/fixtures/electric/electric-api.yaml and sends them, with the demo bearer token, to the
# example gateway (all four layers) in front of its in-process Electric stand-in. Checks and
# their adjustments are in e2e/schemathesis.toml and e2e/schemathesis_hooks.py.
#
#   bash e2e/schemathesis.sh [extra schemathesis run options]
#
# Creates .venv (python3 -m venv) with the pinned schemathesis if needed, builds and starts
# `target/debug/examples/gateway` on a free port, runs schemathesis, stops the gateway, and
# exits with schemathesis' status.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=.venv

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Hypothesis' own cache (Unicode tables, constants) inside the ignored virtual environment,
# not in the work tree.
export HYPOTHESIS_STORAGE_DIRECTORY="$VENV/hypothesis"

echo "== cargo build --example gateway"
cargo build --quiet --example gateway

port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
# Short live windows: a generated live request with a valid handle is answered within 0.5 s.
LISTEN_ADDR="127.0.0.1:$port" STAND_IN_LONG_POLL_HOLD_MS=500 STAND_IN_SSE_DURATION_MS=1000 \
  RUST_LOG=warn "${CARGO_TARGET_DIR:-target}/debug/examples/gateway" >"$log" 2>&1 &
gateway=$!
stop_gateway() {
  kill "$gateway" 2>/dev/null || true
  wait "$gateway" 2>/dev/null || true
  rm -f "$log"
}
trap stop_gateway EXIT

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$gateway" 2>/dev/null; then
    echo "the gateway exited:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done

# The binary itself, before the generated requests (whose accepted statuses include 403): its
# own serve loop must hand the peer address to IpAllowLayer (which refuses without one), and
# the policy must scope alice to her tenant's rows without a hidden column.
echo "== the gateway binary serves the demo shape"
"$VENV/bin/python" - "$port" <<'PY'
import json, sys, urllib.error, urllib.request

shape = f"http://127.0.0.1:{sys.argv[1]}/v1/shape?table=items&offset=-1"
alice = urllib.request.Request(shape, headers={"Authorization": "Bearer alice-token"})
with urllib.request.urlopen(alice, timeout=10) as response:
    rows = [message["value"] for message in json.load(response) if "value" in message]
assert rows, "alice sees no rows"
assert all(row["tenant_id"] == "acme" for row in rows), rows
assert all("internal_note" not in row for row in rows), rows
try:
    urllib.request.urlopen(shape, timeout=10)
    sys.exit("a request without a token was answered")
except urllib.error.HTTPError as error:
    assert error.code == 401, error.code
print(f"  alice: {len(rows)} acme rows; no token: 401")
PY

echo "== schemathesis $SCHEMATHESIS_VERSION: GET /v1/shape against the gateway on port $port"
status=0
"$VENV/bin/schemathesis" --config-file e2e/schemathesis.toml run \
  tests/fixtures/electric/electric-api.yaml \
  --url "http://127.0.0.1:$port" \
  --include-method GET \
  --request-timeout 10 \
  --no-color \
  "$@" || status=$?
exit "$status"
