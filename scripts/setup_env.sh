#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment. Idempotent: a stamp file records the hash
# of requirements.txt + pyproject.toml, and nothing is reinstalled while it matches.
#   VENV=path   where to put it (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
stamp_value=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
stamp_file="$VENV/.tdlib-env-stamp"
if [ -x "$VENV/bin/python" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_value" ]; then
  echo "[setup] environment $VENV is up to date"
  exit 0
fi
echo "[setup] building environment in $VENV (a few minutes the first time)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip="$VENV/bin/python -m pip"
$pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
# torch and torchvision first, pinned exactly (other versions pull multi-GB downloads)
$pip install -q $(grep -E '^(torch|torchvision)==' requirements.txt) 2>&1 | grep -v '^WARNING: Location' || true
$pip install -q -r requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
$pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v '^WARNING: Location' || true
$pip check
"$VENV/bin/python" -c "import torch, torchvision, foolbox, pytorch_grad_cam, papermill, tdlib"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "$stamp_value" > "$stamp_file"
echo "[setup] done"
