#!/usr/bin/env bash
# Regenerates the committed accuracy figures: docs/eval/<pack>/ (report.json with the per-group
# section, roc.png, det.png, scores.png, differential.png, holdout_groups.json, and
# utkface_groups.json when the UTKFace chips are there) and models/<pack>.calibration.json
# (region-keyed: fitted on LFW View 1 train with its East/Southeast Asian groups file).
# Usage: scripts/eval_lfw.sh [LFW_DIR] [UTKFACE_DIR]
#   (defaults ../shared/data/lfw-view1-train, ../shared/data/utkface-adults)
set -euo pipefail
cd "$(dirname "$0")/.."
lfw="${1:-../shared/data/lfw-view1-train}"
utk="${2:-../shared/data/utkface-adults}"
pack="${FVS_MODEL__PACK:-buffalo_sc}"
out="docs/eval/$pack"
fvs=(.venv/bin/fvs --log-level WARNING)
common=(--errata "$lfw/LFW_ERRATA_files.tsv" --alias Joseph_Blatter=Sepp_Blatter --no-progress)
groups=(--groups "$lfw/groups.tsv")
"${fvs[@]}" calibrate "$lfw/images" "${common[@]}" "${groups[@]}" --region east_southeast_asian \
  --name lfw-view1-train --holdout-json "$out/holdout.json"
"${fvs[@]}" eval "$lfw/images" "${common[@]}" "${groups[@]}" --pairs "$lfw/pairsDevTrain.txt" \
  --name lfw-view1-train --out "$out"
# held out: fitted on half of the people, measured on the other half, both ways, 2 seeds
.venv/bin/python scripts/holdout_groups.py "$lfw/images" "${common[@]}" \
  "${groups[@]}" --region east_southeast_asian --seeds 2 --out "$out/holdout_groups.json"
if [[ -f "$utk/labels.csv" ]]; then
  "${fvs[@]}" calibrate "$utk" --check --groups "$utk/labels.csv" --no-progress \
    --report "$out/utkface_groups.json"
fi
