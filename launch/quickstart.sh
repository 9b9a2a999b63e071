#!/usr/bin/env bash
# Quickstart on a fresh Debian 12 machine: install missing packages, build, and run the default job.
# Until the trainer lands, the default job is the kernel self-check: every CPU op's forward values
# and its fp64 finite-difference gradient check.
# Environment: MOE_BUILD_DIR (default build), MOE_CMAKE_ARGS (extra CMake flags, e.g.
# -DMOE_WITH_CUDA=OFF).
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$MOE_ROOT/launch/common.sh"

moe_install_and_build

echo "== kernel self-check: forward values and fp64 gradient checks of every CPU op"
OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}" "$MOE_BUILD_DIR/tests/kernel_tests" --gtest_brief=1
