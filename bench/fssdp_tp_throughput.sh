#!/usr/bin/env bash
# Expert parallelism against FSSDP with tensor parallelism (docs/results/fssdp.md, "With tensor
# parallelism"): the real moe-train on 4 ranks as tp 2 x dp 2 (experts over the 2 data-parallel
# ranks), whole experts on each TP rank and split over TP (parallel.expert_tp), under skewed
# routing (moe.router_skew 8, with the aux and z losses) and starting from a model trained on real
# text. bench_fssdp has no TP; this reads what moe-train logs: training tok/s (the mean of the
# logged steps after the first 10: every second step is logged), and from the last log line (its
# 2 steps) the expert work (max / mean rows over the EP ranks per MoE layer), the expert copies
# per MoE layer over the FSSDP group, and rank 0's sparse MB per step.
#   bench/fssdp_tp_throughput.sh [BUILD_DIR] [TRAINED_STEP_DIR] [STEPS]   (from the repository root)
# TRAINED_STEP_DIR: an MoE checkpoint with an even vocabulary (TP splits it); default: the
# quickstart model with model.vocab_size 258 trained for 300 steps,
# runs/quickstart-trained-v258/step_00000300, trained here first when absent (about 3 minutes).
# STEPS: default 40. Every mode runs the same data, seed and global batch.
set -euo pipefail
build="${1:-build}"
trained="${2:-runs/quickstart-trained-v258/step_00000300}"
steps="${3:-40}"
if [ ! -d "$trained" ] && [ -z "${2:-}" ]; then
  "$build/moe-train" --config configs/quickstart.yaml --set model.vocab_size=258 \
    --set train.steps=300 --set checkpoint.interval=300 \
    --set checkpoint.dir="$(dirname "$trained")" >/dev/null
fi
[ -d "$trained" ] || { echo "error: no trained checkpoint at $trained" >&2; exit 1; }
mpirun=(mpirun --oversubscribe --bind-to none -np 4)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
export OMP_NUM_THREADS=1
# parallel.ep 2: the experts over the 2 data-parallel ranks in every mode (EP's blocks, FSSDP's
# owners).
common=(--config configs/quickstart.yaml --set parallel.tp=2 --set parallel.ep=2
  --set model.vocab_size=258 --set train.steps="$steps" --set train.warmup_steps=1
  --set log.interval=2 --set train.eval_interval=0 --set checkpoint.interval=0)
fssdp=(--set parallel.experts=fssdp)
expert_tp=(--set parallel.expert_tp=true)

# run ROUTING MODE KEYS...: one moe-train run, one line of the table.
run() {
  local routing="$1" mode="$2" log steps_logged last tok_s work copies sparse
  shift 2
  log="$("${mpirun[@]}" "$build/moe-train" "${common[@]}" "$@" 2>&1)" ||
    { echo "$log" >&2; echo "error: $mode under $routing failed" >&2; exit 1; }
  steps_logged="$(grep -E '^\[rank 0\] step [0-9]+/' <<<"$log" || true)"
  [ "$(wc -l <<<"$steps_logged")" -gt 5 ] ||
    { echo "$log" >&2; echo "error: $mode under $routing logged under 6 steps" >&2; exit 1; }
  tok_s="$(awk -F'|' 'NR > 5 { split($7, a, " "); sum += a[1]; n++ }
    END { printf "%.0f", sum / n }' <<<"$steps_logged")"
  last="$(tail -1 <<<"$steps_logged")"
  # Logged by moe-train only where experts are spread over ranks (expert work) and under FSSDP.
  work="$(grep -oE 'expert work [^|]*' <<<"$last" | sed 's/expert work //; s/L[0-9] //g' || true)"
  copies="$(grep -oE 'copies [^|]*' <<<"$last" | sed 's/copies //; s/L[0-9] //g' || true)"
  sparse="$(grep -oE 'sparse [0-9.]+' <<<"$last" | sed 's/sparse //' || true)"
  printf '%-14s %-16s %9s %24s %16s %10s\n' "$routing" "$mode" "$tok_s" "${work:--}" \
    "${copies:--}" "${sparse:--}"
}

printf '%-14s %-16s %9s %24s %16s %10s\n' routing mode "tok/s" "expert work (L0..L3)" copies \
  "sparse MB"
for routing in "skew 8" "trained model"; do
  if [ "$routing" = "skew 8" ]; then
    keys=(--set moe.router_skew=8)
  else
    keys=(--set init.method=load --set init.from="$trained")
  fi
  run "$routing" ep "${keys[@]}"
  run "$routing" fssdp "${keys[@]}" "${fssdp[@]}"
  run "$routing" "ep expert_tp" "${keys[@]}" "${expert_tp[@]}"
  run "$routing" "fssdp expert_tp" "${keys[@]}" "${fssdp[@]}" "${expert_tp[@]}"
done
