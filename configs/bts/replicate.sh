#!/usr/bin/env bash
# The BTS replication at small scale (docs/results/bts.md): the seed and its three branches
# (branch.sh, skipped when runs/bts already has them), the BTX MoE of the branches and the BTS
# stitched model, each trained on the blend for the same 300 steps of 1024 tokens, then every
# model evaluated on the three validation sets and the table and plot written.
#   configs/bts/replicate.sh [BUILD_DIR]      (from the repository root)
# Environment: EVAL_BATCHES (default 32: 32 x 8 x 128 tokens per validation set).
set -euo pipefail
build="${1:-build}"
out=runs/bts
eval_batches="${EVAL_BATCHES:-32}"
[ -d "$out/code" ] || OUT="$out" configs/bts/branch.sh "$build"
latest() { echo "$1/$(ls "$1" | grep '^step_' | tail -1)"; }

rm -rf "$out/btx_init" "$out/btx" "$out/stitch"
"$build/moe-upcycle" --method btx --config configs/bts/btx.yaml --output "$out/btx_init" \
  --dense "$(latest "$out/bible")" --dense "$(latest "$out/austen")" --dense "$(latest "$out/code")"
"$build/moe-train" --config configs/bts/btx.yaml --set checkpoint.resume="$out/btx_init/step_00000000" \
  --set log.metrics_file="$out/btx.jsonl" > "$out/btx.log" 2>&1
"$build/moe-train" --config configs/bts/stitch.yaml --set log.metrics_file="$out/stitch.jsonl" \
  > "$out/stitch.log" 2>&1

for run in seed bible austen code btx stitch; do
  "$build/moe-eval" --checkpoint "$(latest "$out/$run")" --json \
    --set train.eval_batches="$eval_batches" > "$out/eval_$run.json"
  cat "$out/eval_$run.json"
done
for python in python3 /usr/bin/python3; do "$python" -c "import matplotlib" 2>/dev/null && break; done
"$python" configs/bts/report.py "$out" docs/results/bts_val_loss.png
