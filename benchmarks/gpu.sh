#!/usr/bin/env bash
# The pipeline and service benchmarks on a GPU machine, in one command:
#   FVS_GPU=1 scripts/setup.sh && benchmarks/gpu.sh
# Refuses to run (instead of silently measuring the CPU) when onnxruntime has no CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
provider="${FVS_MODEL__PROVIDERS:-cuda}"
export FVS_MODEL__PROVIDERS="$provider"
"$py" - <<'PY'
import onnxruntime as ort
available = ort.get_available_providers()
print("onnxruntime", ort.__version__, "providers", available)
if "CUDAExecutionProvider" not in available:
    raise SystemExit("no CUDAExecutionProvider: install onnxruntime-gpu (FVS_GPU=1 scripts/setup.sh)")
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
stamp=$(date -u +%Y%m%dT%H%M%S)
"$py" benchmarks/pipeline.py --threads 1 4 8 16 32 --out "benchmarks/results/gpu-pipeline-$stamp.json"
"$py" benchmarks/service.py --providers "$provider" --levels 1 4 8 16 32 \
  --env "FVS_SERVER__WORKERS=8" "FVS_PIPELINE__BATCHING__MAX_BATCH_SIZE=32" \
  --out "benchmarks/results/gpu-service-$stamp.json"
