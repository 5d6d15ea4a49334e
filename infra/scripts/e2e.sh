#!/usr/bin/env bash
# The dashboard's end-to-end test: a local cloud of its own (no demo traffic, a fresh state
# folder, ports apart from `make dev`'s), then dashboard/e2e/e2e.mjs in headless Chromium.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
state=$(mktemp -d)
# The rollup job every 10 s instead of every minute: steps wait for sealed minutes, not the clock.
export PULSE_DEMO=off PULSE_STATE_DIR="$state" PULSE_RATE_SECS=10
export PULSE_HTTP_PORT="${E2E_HTTP_PORT:-3300}" PULSE_WS_PORT="${E2E_WS_PORT:-3301}" PULSE_AWS_PORT="${E2E_AWS_PORT:-4666}"
./target/debug/pulse-local >"$state/local-cloud.log" 2>&1 &
pid=$!
cleanup() {
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  mkdir -p dashboard/e2e/artifacts
  cp "$state/local-cloud.log" dashboard/e2e/artifacts/ 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT
url="http://127.0.0.1:$PULSE_HTTP_PORT"
for _ in $(seq 1 240); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "e2e: the local cloud stopped:" >&2
    tail -20 "$state/local-cloud.log" >&2
    exit 1
  fi
  if node -e "fetch('$url/api/v1/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; then
    break
  fi
  sleep 1
done
PULSE_URL="$url" node dashboard/e2e/e2e.mjs
