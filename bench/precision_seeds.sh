#!/usr/bin/env bash
# How far apart two runs of the quickstart MoE (configs/quickstart.yaml, 300 steps, warmup 30, as
# e2e_bf16_tests) land when only rounding differs, per seed (docs/results/precision.md):
# - f32 on one rank (the reference);
# - f32 on two tensor-parallel ranks (parallel.tp=2): the same batch, the same loss and the same
#   arithmetic, only the sums over the two ranks' partial results in another order
#   (parallel_layout_tests: equal to one rank within f32 rounding);
# - bf16 on one rank.
# All three with model.vocab_size=258 (TP splits the vocabulary, and 2 must divide it; the byte
# tokenizer uses 257, so one row is never a target). Prints each run's final validation loss, its
# difference from the reference, and the means.
#   bench/precision_seeds.sh [BUILD_DIR] [SEED ...]      (from the repository root)
# Seeds default to 1 2 3 7 42. About 2 minutes a seed on the 2-core development machine.
set -euo pipefail
build="${1:-build}"
seeds=("${@:2}")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3 7 42)
export OMP_NUM_THREADS=1
out="runs/precision_seeds"
mkdir -p "$out"

# val_loss RUN LAUNCH... : trains one run (with the keys in args) and prints its final validation
# loss.
val_loss() {
  local run="$1"
  shift
  rm -rf "${out:?}/$run"
  "$@" "$build/moe-train" --config configs/quickstart.yaml --set train.steps=300 \
    --set train.warmup_steps=30 --set train.eval_interval=300 --set log.interval=50 \
    --set checkpoint.dir="$out/$run" "${args[@]}" > "$out/$run.log" 2>&1 ||
    { tail -3 "$out/$run.log" >&2; exit 1; }
  rm -rf "${out:?}/$run"
  local loss
  loss=$(sed -n 's/.*val loss \([0-9.]*\);.*/\1/p' "$out/$run.log" | tail -1)
  [ -n "$loss" ] || { echo "no final val loss in $out/$run.log" >&2; exit 1; }
  echo "$loss"
}

mpi=(mpiexec -n 2 --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
printf '| seed | f32, 1 rank | f32, tp 2 | vs 1 rank | bf16 | vs f32 |\n|---:|---:|---:|---:|---:|---:|\n'
results=()
for seed in "${seeds[@]}"; do
  seed_args=(--set train.seed="$seed" --set model.vocab_size=258)
  args=("${seed_args[@]}")
  f32=$(val_loss "f32_$seed")
  args=("${seed_args[@]}" --set parallel.tp=2)
  tp2=$(val_loss "f32tp2_$seed" "${mpi[@]}")
  args=("${seed_args[@]}" --set train.precision=bf16)
  bf16=$(val_loss "bf16_$seed")
  results+=("$f32 $tp2 $bf16")
  awk -v s="$seed" -v a="$f32" -v b="$tp2" -v c="$bf16" 'BEGIN {
    printf "| %s | %.4f | %.4f | %+.1f%% | %.4f | %+.1f%% |\n", s, a, b, 100 * (b / a - 1), c,
      100 * (c / a - 1) }'
done
printf '%s\n' "${results[@]}" | awk '{ a += $1; b += $2; c += $3; n++ } END {
  printf "| mean | %.4f | %.4f | %+.1f%% | %.4f | %+.1f%% |\n", a / n, b / n, 100 * (b / a - 1),
    c / n, 100 * (c / a - 1) }'
