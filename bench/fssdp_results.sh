#!/usr/bin/env bash
# The measurements of docs/results/fssdp.md: bench_fssdp (EP against FSSDP and LLEP on real
# ranks) on 4 and 8 ranks with and without router skew (with the balancing losses, and without
# them so that routing stays put), and on a trained model's real routing, then the cost model's
# sweep over skew for a 32-GPU cluster with 1, 2 and 4 copy slots, and its plot.
#   bench/fssdp_results.sh [BUILD_DIR] [TRAINED_STEP_DIR]     (from the repository root)
# TRAINED_STEP_DIR: an MoE checkpoint trained on real text (default: the upcycling replication's
# Drop-Upcycled model, runs/upcycling/drop/step_00000300; skipped when absent).
set -euo pipefail
build="${1:-build}"
trained="${2:-runs/upcycling/drop/step_00000300}"
mpirun=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
export OMP_NUM_THREADS=1
# llep.min_tokens: these steps route about 4 x 128 x 2 tokens per rank, far below LLEP's default
# chunk of 1024.
small=(--set train.warmup_steps=1 --set train.micro_batch_size=4 --set llep.min_tokens=64)
for ranks in 4 8; do
  for skew in 0 8; do
    for slots in 2 4; do
      echo "## $ranks ranks, moe.router_skew $skew, fssdp.slots $slots"
      "${mpirun[@]}" -np "$ranks" "$build/bench/bench_fssdp" --config configs/quickstart.yaml \
        --steps 5 --warmup 3 "${small[@]}" --set moe.router_skew="$skew" \
        --set fssdp.slots="$slots" 2>&1 | grep -v '^\[rank 0\] FSSDP'
    done
  done
  echo "## $ranks ranks, moe.router_skew 8 without balancing losses (stable routing), fssdp.slots 2"
  "${mpirun[@]}" -np "$ranks" "$build/bench/bench_fssdp" --config configs/quickstart.yaml \
    --steps 5 --warmup 3 "${small[@]}" --set moe.router_skew=8 --set moe.aux_loss_coeff=0 \
    --set moe.z_loss_coeff=0 2>&1 | grep -v '^\[rank 0\] FSSDP'
  if [ -d "$trained" ]; then
    echo "## $ranks ranks, trained model $trained, fssdp.slots 2"
    "${mpirun[@]}" -np "$ranks" "$build/bench/bench_fssdp" --checkpoint "$trained" --steps 5 \
      --warmup 3 "${small[@]}" 2>&1 | grep -v '^\[rank 0\] FSSDP'
  fi
done
echo "## cost model"
sweeps=()
for slots in 1 2 4; do
  "$build/bench/fssdp_cost_sweep" --slots "$slots" | tee "/tmp/fssdp_sweep_$slots.txt"
  sweeps+=("/tmp/fssdp_sweep_$slots.txt")
done
for python in python3 /usr/bin/python3; do "$python" -c "import matplotlib" 2>/dev/null && break; done
"$python" bench/plot_fssdp_sweep.py docs/results/fssdp_speedup.png "${sweeps[@]}"
