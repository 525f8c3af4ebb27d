#!/usr/bin/env bash
# Everything CI checks: setup, lint, format, types, generated-code drift, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
venv="${FVS_VENV:-.venv}"
export PATH="$PWD/$venv/bin:$PATH"
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== generated code drift"
gen="$(mktemp -d)"; trap 'rm -rf "$gen"' EXIT
PYTHON=python scripts/gen_proto.sh "$gen"
if ! diff -r -x __pycache__ "$gen" fvs/api/v1; then
  echo "fvs/api/v1 is out of date with proto/: run scripts/gen_proto.sh" >&2; exit 1
fi
echo "== postgresql"
FVS_TEST_PG_URL="$(scripts/ensure_postgres.sh)"; export FVS_TEST_PG_URL
echo "tests use $FVS_TEST_PG_URL"
echo "== chromium (browser tests of the console)"
scripts/ensure_chromium.sh
echo "== pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
if [ "$rc" -eq 0 ] && [ "${FVS_FUZZ_SECONDS:-2}" != "0" ]; then
  echo "== fuzz (short runs; FVS_FUZZ_SECONDS=0 skips, scripts/fuzz.sh 600 for the long one)"
  scripts/fuzz.sh "${FVS_FUZZ_SECONDS:-2}" || rc=$?
fi
exit "$rc"
