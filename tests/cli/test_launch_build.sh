#!/usr/bin/env bash
# The build step of the launch scripts (launch/common.sh), for real: moe_install_and_build with a
# target builds that target alone, Release by default, with the CUDA choice it is given (in the
# cache); moe_cuda_for_this_machine honours MOE_WITH_CUDA and otherwise picks CUDA only where
# nvidia-smi lists a GPU. The build goes to a temporary folder (ccache makes it quick).
#   test_launch_build.sh <repo root>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
MOE_ROOT="$1"
source "$MOE_ROOT/launch/common.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

expect zero ON env MOE_WITH_CUDA=ON bash -c "source $MOE_ROOT/launch/common.sh; moe_cuda_for_this_machine"
gpu_choice=OFF
nvidia-smi -L >/dev/null 2>&1 && gpu_choice=AUTO
choice="$(unset MOE_WITH_CUDA; moe_cuda_for_this_machine)"
[ "$choice" = "$gpu_choice" ] || fail "moe_cuda_for_this_machine: $choice, expected $gpu_choice"

export MOE_BUILD_DIR="$work/build" MOE_CMAKE_ARGS=-DMOE_BUILD_BENCH=OFF
expect zero "moe-data" moe_install_and_build OFF moe-data
[ -x "$work/build/moe-data" ] || fail "no moe-data in $work/build"
for other in moe-train tests/kernel_tests; do
  [ ! -e "$work/build/$other" ] || fail "moe_install_and_build OFF moe-data also built $other"
done
grep -qx "MOE_WITH_CUDA:STRING=OFF" "$work/build/CMakeCache.txt" || fail "MOE_WITH_CUDA is not OFF"
grep -qx "CMAKE_BUILD_TYPE:STRING=Release" "$work/build/CMakeCache.txt" || fail "not a Release build"

[ "$failures" -eq 0 ] && echo "all passed" || { echo "$failures failure(s)"; exit 1; }
