#!/usr/bin/env bash
# The checks that need a GPU, in one run: builds the CUDA tests for this machine's GPU, runs every
# ctest test labelled cuda (each CUDA op against the CPU, the whole training step on the GPU against
# the CPU, NCCL against MPI), and writes the logs and the machine's description to OUT_DIR.
#   tools/gpu_check.sh [BUILD_DIR] [OUT_DIR]     (defaults: build-gpu, gpu-check)
# Needs the packages tests/run.sh installs, the CUDA toolkit (nvcc on PATH or in /usr/local/cuda)
# and a GPU. CMAKE_CUDA_ARCHITECTURES defaults to the GPU's own (e.g. 90 on an H100 or H200).
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$MOE_ROOT/build-gpu}"
OUT="${2:-$MOE_ROOT/gpu-check}"
mkdir -p "$OUT"
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
command -v nvidia-smi >/dev/null 2>&1 || { echo "gpu_check: nvidia-smi not found: no GPU driver here" >&2; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv | tee "$OUT/gpu.csv"
nvcc --version | tail -2 | tee "$OUT/nvcc.txt"
arch="${CMAKE_CUDA_ARCHITECTURES:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}"
cmake -S "$MOE_ROOT" -B "$BUILD" -G Ninja -DMOE_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DMOE_BUILD_BENCH=OFF ${MOE_CMAKE_ARGS:-} | tee "$OUT/configure.log"
cmake --build "$BUILD" --target cuda_tests cuda_training_tests nccl_communicator_tests \
  2>&1 | tee "$OUT/build.log"
status=0
(cd "$BUILD" && ctest -L cuda --output-on-failure --verbose) > "$OUT/ctest_cuda.log" 2>&1 || status=$?
grep -E "^\[cuda vs cpu\]|tests passed|Failed|SKIPPED" "$OUT/ctest_cuda.log" | tee "$OUT/summary.txt"
exit $status
