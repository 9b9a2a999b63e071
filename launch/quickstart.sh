#!/usr/bin/env bash
# Quickstart on a fresh Debian 12 machine: install missing packages, build moe-train and moe-data
# (and only them: the tests and benchmarks are tests/run.sh's), write the default corpus
# (the King James Bible) and train configs/quickstart.yaml, a small MoE, for a few minutes on the
# CPU. Prints the loss as it falls and a generated sample at the end; metrics go to
# runs/quickstart/metrics.jsonl and plots to runs/quickstart/plots/.
# Environment: MOE_BUILD_DIR (default build), MOE_WITH_CUDA (default: AUTO where nvidia-smi lists a
# GPU, else OFF: no CUDA compile on a CPU machine), MOE_CMAKE_ARGS (extra CMake flags, e.g.
# -DMOE_NATIVE=ON), OMP_NUM_THREADS (default: every core). Arguments are passed to moe-train,
# e.g. --set train.steps=100.
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$MOE_ROOT/launch/common.sh"

moe_install_and_build "$(moe_cuda_for_this_machine)" moe-train moe-data
bash "$MOE_ROOT/launch/prepare_corpora.sh"

cd "$MOE_ROOT"
run_dir=runs/quickstart
echo "== training configs/quickstart.yaml on $(nproc) cores"
OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}" "$MOE_BUILD_DIR/moe-train" \
  --config configs/quickstart.yaml --set log.metrics_file="$run_dir/metrics.jsonl" \
  --sample 300 "$@"
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  /usr/bin/python3 tools/plot_metrics.py "$run_dir/metrics.jsonl" --out "$run_dir/plots"
fi
