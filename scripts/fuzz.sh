#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz/targets.py) under atheris for SECONDS each (default 60).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# New inputs go to a scratch folder ($FVS_FUZZ_WORK, default a temp dir); the committed seeds
# and past findings in tests/fuzz/corpus/<target>/ are read, never written. A crash, hang
# (over 20 s for one input) or memory over 2 GiB fails the run and leaves the input in
# $FVS_FUZZ_WORK/crashes/<target>/: fix it, then copy the input into tests/fuzz/corpus/<target>/
# so that CI replays it (tests/unit/test_fuzz_corpus.py).
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
py="${FVS_VENV:-.venv}/bin/python"
if ! "$py" -c "import atheris" 2>/dev/null; then
  echo "fuzz: atheris is not installed (scripts/setup.sh installs requirements/dev.txt)" >&2
  exit 2
fi
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("$py" -c "from tests.fuzz.targets import TARGETS; print('\n'.join(TARGETS))")
fi
[ -d tests/fuzz/corpus ] || "$py" -m tests.fuzz.seeds
work="${FVS_FUZZ_WORK:-$(mktemp -d -t fvs-fuzz-XXXX)}"
keep="${FVS_FUZZ_WORK:+yes}"  # a scratch folder of our own is removed after a clean run
export FVS_FUZZ_SCRATCH="$work/scratch"
mkdir -p "$FVS_FUZZ_SCRATCH"
failed=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target" "$work/crashes/$target"
  log="$work/$target.log"
  "$py" tests/fuzz/run.py "$target" "$work/$target" "tests/fuzz/corpus/$target" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/crashes/$target/" >"$log" 2>&1
  rc=$?
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)"
  if [ "$rc" -eq 0 ]; then
    echo "fuzz: $target ok: ${runs:-?} inputs in ${seconds} s, ${cov:-cov: ?}"
  else
    echo "fuzz: $target FAILED (exit $rc) after ${runs:-?} inputs; log $log" >&2
    grep -E "Uncaught Python exception|Error|==ERROR|Traceback" -A 12 "$log" | head -40 >&2
    failed+=("$target")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: logs, new inputs and failing inputs in $work" >&2
  echo "fuzz: failing targets: ${failed[*]}" >&2
  exit 1
fi
rm -rf "$FVS_FUZZ_SCRATCH"
if [ -n "$keep" ]; then echo "fuzz: logs and new inputs in $work"; else rm -rf "$work"; fi
