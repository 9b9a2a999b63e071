#!/usr/bin/env bash
# The load-balancing study of docs/results/load-balancing.md: the quickstart model trained four
# times with the same data, seed, steps and global batch (micro_batch_size 1 x grad_accum 8 = 8
# sequences of 128 tokens per step), balanced by the micro-batch load-balancing loss, the
# global-batch one (Qiu et al. 2025), the aux-loss-free expert bias, and not at all (the control).
# Then, per run, moe-eval's loss per domain and expert loads (--expert-loads), and
# bench/plot_load_balancing.py's tables (loss per domain, mutual information between domain and
# expert per layer) and heatmap.
#   bench/load_balancing_study.sh [BUILD_DIR] [STEPS] [SEED ...]      (from the repository root)
# STEPS defaults to 1200; each SEED (default 1, 2 and 3) sets train.seed (init) and data.seed (data
# order) of all four runs. One core (OMP_NUM_THREADS=1), about 15 minutes a seed on the 2-core
# development machine. Per seed: the runs in runs/load_balancing/seed<SEED>/, the tables on stdout
# and in its tables.md, the heatmap in docs/results/load_balancing_seed<SEED>.png.
set -euo pipefail
build="${1:-build}"
steps="${2:-1200}"
seeds=("${@:3}")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
export OMP_NUM_THREADS=1
for python in python3 /usr/bin/python3; do "$python" -c "import matplotlib" 2>/dev/null && break; done
for seed in "${seeds[@]}"; do
  out="runs/load_balancing/seed$seed"
  rm -rf "$out"
  mkdir -p "$out"
  # eval_batches 32: 32 global batches = 256 sequences (32768 tokens) of each validation set.
  same=(--config configs/quickstart.yaml --set train.steps="$steps" --set train.seed="$seed"
    --set data.seed="$seed" --set train.micro_batch_size=1 --set train.grad_accum=8
    --set train.eval_batches=32 --set train.eval_interval="$steps")
  runs=()
  for run in micro_batch global_batch expert_bias no_balancing; do
    case "$run" in
      micro_batch) args=(--set moe.aux_loss_type=micro_batch) ;;
      global_batch) args=(--set moe.aux_loss_type=global_batch) ;;
      expert_bias) args=(--set moe.expert_bias=true --set moe.aux_loss_coeff=0) ;;
      no_balancing) args=(--set moe.aux_loss_coeff=0) ;;
    esac
    "$build/moe-train" "${same[@]}" "${args[@]}" --set checkpoint.dir="$out/$run" \
      --set log.metrics_file="$out/$run.jsonl" > "$out/$run.log" 2>&1 ||
      { tail -3 "$out/$run.log"; exit 1; }
    echo "## seed $seed, $run"
    grep -E "^(eval step|done)" "$out/$run.log" | tail -2
    step="$out/$run/$(ls "$out/$run" | grep '^step_' | tail -1)"
    # The same global batch in micro-batches of 8: the same sequences, fewer forwards.
    "$build/moe-eval" --checkpoint "$step" --set train.micro_batch_size=8 \
      --set train.grad_accum=1 --json --expert-loads "$out/$run.loads.json" > "$out/$run.eval.json"
    runs+=("$run=$out/$run.eval.json:$out/$run.loads.json")
  done
  "$python" bench/plot_load_balancing.py "docs/results/load_balancing_seed$seed.png" "${runs[@]}" |
    tee "$out/tables.md"
done
