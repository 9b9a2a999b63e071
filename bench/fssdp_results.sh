#!/usr/bin/env bash
# The measurements of docs/results/fssdp.md: bench_fssdp (EP against FSSDP and LLEP on real
# ranks) on 4 and 8 ranks with and without router skew (with the balancing losses, and without
# them so that routing stays put), and on a trained model's real routing, then the cost model's
# sweep over skew for a 32-GPU cluster with 1, 2 and 4 copy slots, and its plot.
# Then the step time of EP, FSSDP and LLEP on 2 and 4 ranks (one thread each), with more steps,
# and the cost model's prediction for those runs from this machine's rates: TFLOPS (default 0.09,
# bench_kernels' BM_MatmulOps at one thread) and INTRA_GBS (default 11, bench_collectives'
# send_recv between 2 ranks at 256 KiB-1 MiB), both environment variables.
#   bench/fssdp_results.sh [BUILD_DIR] [TRAINED_STEP_DIR]     (from the repository root)
# TRAINED_STEP_DIR: an MoE checkpoint trained on real text (default: the quickstart model trained
# for 300 steps with its aux and z losses, runs/quickstart-trained/step_00000300, trained here
# first when absent: about 3 minutes).
set -euo pipefail
build="${1:-build}"
trained="${2:-runs/quickstart-trained/step_00000300}"
mpirun=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
export OMP_NUM_THREADS=1
quiet=(grep -v -e '^\[rank 0\] FSSDP' -e '^\[rank 0\] LLEP')
if [ ! -d "$trained" ] && [ $# -lt 2 ]; then
  "$build/moe-train" --config configs/quickstart.yaml --set train.steps=300 \
    --set checkpoint.interval=300 --set checkpoint.dir="$(dirname "$trained")" >/dev/null
fi
# llep.min_tokens: these steps route about 4 x 128 x 2 tokens per rank, far below LLEP's default
# chunk of 1024.
small=(--set train.warmup_steps=1 --set train.micro_batch_size=4 --set llep.min_tokens=64)
for ranks in 4 8; do
  for skew in 0 8; do
    for slots in 2 4; do
      echo "## $ranks ranks, moe.router_skew $skew, fssdp.slots $slots"
      "${mpirun[@]}" -np "$ranks" "$build/bench/bench_fssdp" --config configs/quickstart.yaml \
        --steps 5 --warmup 3 "${small[@]}" --set moe.router_skew="$skew" \
        --set fssdp.slots="$slots" 2>&1 | "${quiet[@]}"
    done
  done
  echo "## $ranks ranks, moe.router_skew 8 without balancing losses (stable routing), fssdp.slots 2"
  "${mpirun[@]}" -np "$ranks" "$build/bench/bench_fssdp" --config configs/quickstart.yaml \
    --steps 5 --warmup 3 "${small[@]}" --set moe.router_skew=8 --set moe.aux_loss_coeff=0 \
    --set moe.z_loss_coeff=0 2>&1 | "${quiet[@]}"
  if [ -d "$trained" ]; then
    echo "## $ranks ranks, trained model $trained, fssdp.slots 2"
    "${mpirun[@]}" -np "$ranks" "$build/bench/bench_fssdp" --checkpoint "$trained" --steps 5 \
      --warmup 3 "${small[@]}" 2>&1 | "${quiet[@]}"
  fi
done
model=(--tflops "${TFLOPS:-0.09}" --intra-gbs "${INTRA_GBS:-11}")
for ranks in 2 4; do
  echo "## step time, $ranks ranks, moe.router_skew 8, fssdp.slots 2"
  "${mpirun[@]}" -np "$ranks" "$build/bench/bench_fssdp" --config configs/quickstart.yaml \
    --steps 20 --warmup 3 "${small[@]}" "${model[@]}" --set moe.router_skew=8 2>&1 | "${quiet[@]}"
  echo "## step time, $ranks ranks, trained model $trained, fssdp.slots 2"
  "${mpirun[@]}" -np "$ranks" "$build/bench/bench_fssdp" --checkpoint "$trained" --steps 20 \
    --warmup 3 "${small[@]}" "${model[@]}" 2>&1 | "${quiet[@]}"
done
echo "## cost model"
sweeps=()
for slots in 1 2 4; do
  "$build/bench/fssdp_cost_sweep" --slots "$slots" | tee "/tmp/fssdp_sweep_$slots.txt"
  sweeps+=("/tmp/fssdp_sweep_$slots.txt")
done
for python in python3 /usr/bin/python3; do "$python" -c "import matplotlib" 2>/dev/null && break; done
"$python" bench/plot_fssdp_sweep.py docs/results/fssdp_speedup.png "${sweeps[@]}"
