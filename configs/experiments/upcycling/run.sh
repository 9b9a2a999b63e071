#!/usr/bin/env bash
# The upcycling replication at small scale (docs/results/upcycling.md): a dense model, then the same
# MoE trained for the same tokens from scratch and copy-, Drop- (r = 0.5) and noise-upcycled from it,
# then one plot of the validation curves.
#   configs/experiments/upcycling/run.sh [BUILD_DIR]      (from the repository root)
set -euo pipefail
build="${1:-build}"
here="configs/experiments/upcycling"
out="runs/upcycling"
rm -rf "$out"
mkdir -p "$out"
"$build/moe-train" --config "$here/dense.yaml" > "$out/dense.log" 2>&1
dense="$out/dense/$(ls "$out/dense" | grep '^step_' | tail -1)"
for run in scratch copy drop noise; do
  args=(--config "$here/moe.yaml" --set checkpoint.dir="$out/$run" --set log.metrics_file="$out/$run.jsonl")
  case "$run" in
    scratch) ;;
    copy) args+=(--set init.method=copy --set init.from="$dense") ;;
    drop) args+=(--set init.method=drop --set init.from="$dense" --set init.drop_ratio=0.5) ;;
    noise) args+=(--set init.method=noise --set init.from="$dense" --set init.drop_ratio=0.5 --set init.noise_std=0.02) ;;
  esac
  "$build/moe-train" "${args[@]}" > "$out/$run.log" 2>&1
  grep -E "^(eval step|done)" "$out/$run.log" | tail -2
done
for python in python3 /usr/bin/python3; do "$python" -c "import matplotlib" 2>/dev/null && break; done
"$python" "$here/plot.py" "$out" docs/results/upcycling_val_loss.png
