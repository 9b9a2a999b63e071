#!/usr/bin/env bash
# The whole test suite: install missing packages, build every target (CUDA code too when nvcc is
# present, GPU or not: CI compiles it), run
# every ctest test (unit, mpi, e2e, cuda: the cuda tests skip without a GPU) and exit non-zero on any
# failure. .ci/run calls this; so can you.
# Environment: MOE_BUILD_DIR (default build), MOE_WITH_CUDA (default AUTO), MOE_CMAKE_ARGS (extra
# CMake flags), CTEST_ARGS (e.g. "-L unit" or "-R communicator").
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$MOE_ROOT/launch/common.sh"

moe_install_and_build "${MOE_WITH_CUDA:-AUTO}"
bash "$MOE_ROOT/launch/prepare_corpora.sh"  # the e2e tests train on them

cd "$MOE_BUILD_DIR"
ctest --output-on-failure --parallel "$(nproc)" ${CTEST_ARGS:-}
