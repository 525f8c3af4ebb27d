#!/usr/bin/env bash
# Sets up FVS in ./.venv (or $FVS_VENV): the pinned runtime and dev closures, FVS itself
# (editable), then checks the install. Idempotent: a second run only re-checks.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FVS_VENV:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install --no-deps -r requirements/runtime.txt -r requirements/dev.txt
"${pip[@]}" install --no-deps --no-build-isolation -e .
"$venv/bin/python" scripts/check_env.py
