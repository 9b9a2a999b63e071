#!/usr/bin/env bash
# Peak memory of moe-convert on a 1.28 GB model, both directions (docs/results/interop.md).
#   bench/convert_memory.sh [BUILD_DIR]     (python3 with numpy and safetensors for the model)
set -euo pipefail
build="${1:-build}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 "$(dirname "$0")/make_large_hf_model.py" "$tmp/hf"
ls -l "$tmp/hf/model.safetensors"
/usr/bin/time -v "$build/moe-convert" hf-to-moeforge --input "$tmp/hf" --output "$tmp/ck" 2>&1 |
  grep -E "tensors read|Maximum resident|Elapsed"
/usr/bin/time -v "$build/moe-convert" moeforge-to-hf --input "$tmp/ck/step_00000000" \
  --output "$tmp/out" --dtype bf16 --max-shard-bytes 400000000 2>&1 |
  grep -E "file\(s\)|Maximum resident|Elapsed"
