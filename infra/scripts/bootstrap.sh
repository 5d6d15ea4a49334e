#!/usr/bin/env bash
# Installs what `make dev` and `make test` need, idempotently: a Python venv in ./.venv with
# the AWS emulator (moto), cfn-lint and cargo-lambda (with zig). Re-runs only when
# infra/requirements.txt changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
req="$root/infra/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/moto_server" ]; then
  exit 0
fi
echo "bootstrap: installing Python tools into $venv (once)"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
