#!/usr/bin/env bash
# Sets up FVS in ./.venv (or $FVS_VENV): the pinned runtime and dev closures, FVS itself
# (editable), then checks the install. Idempotent: a second run only re-checks.
# FVS_GPU=1: onnxruntime-gpu instead of onnxruntime. FVS_DEV=0: without test and lint tools.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FVS_VENV:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
runtime=(-r requirements/runtime.txt)
if [ "${FVS_GPU:-0}" = "1" ]; then
  # onnxruntime-gpu replaces the CPU onnxruntime (both own the onnxruntime/ folder).
  cpu_free="$(mktemp)"; trap 'rm -f "$cpu_free"' EXIT
  grep -v '^onnxruntime==' requirements/runtime.txt > "$cpu_free"
  "${pip[@]}" uninstall -y onnxruntime >/dev/null 2>&1 || true
  runtime=(-r "$cpu_free" -r requirements/gpu.txt)
fi
dev=(-r requirements/dev.txt)
if [ "${FVS_DEV:-1}" = "0" ]; then dev=(); fi  # images: no test or lint tools
"${pip[@]}" install --no-deps "${runtime[@]}" -r requirements/build.txt "${dev[@]}"
"${pip[@]}" install --no-deps --no-build-isolation -e .
"$venv/bin/python" scripts/check_env.py
