#!/usr/bin/env bash
# Regenerates the committed accuracy figures: docs/eval/<pack>/ (report.json, roc.png, det.png,
# scores.png, holdout.json) and models/<pack>.calibration.json, from LFW View 1 train.
# Usage: scripts/eval_lfw.sh [LFW_DIR]   (default ../shared/data/lfw-view1-train)
set -euo pipefail
cd "$(dirname "$0")/.."
lfw="${1:-../shared/data/lfw-view1-train}"
pack="${FVS_MODEL__PACK:-buffalo_sc}"
out="docs/eval/$pack"
fvs=(.venv/bin/fvs --log-level WARNING)
common=(--errata "$lfw/LFW_ERRATA_files.tsv" --alias Joseph_Blatter=Sepp_Blatter --no-progress)
"${fvs[@]}" calibrate "$lfw/images" "${common[@]}" --name lfw-view1-train \
  --holdout-json "$out/holdout.json"
"${fvs[@]}" eval "$lfw/images" "${common[@]}" --pairs "$lfw/pairsDevTrain.txt" \
  --name lfw-view1-train --out "$out"
