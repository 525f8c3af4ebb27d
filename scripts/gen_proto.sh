#!/usr/bin/env bash
# Generates the Python gRPC code in fvs/api/v1/ from proto/fvs/v1/*.proto.
# Usage: scripts/gen_proto.sh [OUT_DIR]   (default: fvs/api/v1; the drift check passes a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-fvs/api/v1}"
py="${PYTHON:-python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$py" -m grpc_tools.protoc -I proto \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  proto/fvs/v1/*.proto
mkdir -p "$out"
for f in "$tmp"/fvs/v1/*.py "$tmp"/fvs/v1/*.pyi; do
  # The proto package fvs.v1 lives in the Python package fvs.api.v1, so that grpc code stays
  # under fvs/api/: rewrite the generated cross-file imports accordingly.
  sed -e 's/^from fvs\.v1 import /from fvs.api.v1 import /' "$f" > "$out/$(basename "$f")"
done
printf '"""Generated from proto/fvs/v1 by scripts/gen_proto.sh. Do not edit."""\n' > "$out/__init__.py"
