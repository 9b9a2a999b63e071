# Shared by the launch/ scripts and tests/run.sh: install what is
# missing, then configure and build.
# Sourced, not run. Idempotent: packages already present are not touched, and a second build only
# recompiles what changed (ninja + ccache).

MOE_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
  libyaml-cpp-dev libcli11-dev libopenblas-openmp-dev
  libgtest-dev libbenchmark-dev
  python3-matplotlib python3-h5py bible-kjv clang libclang-rt-14-dev
)

moe_install_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The CUDA choice of a script that runs what it builds: $MOE_WITH_CUDA when set (AUTO|ON|OFF),
# else AUTO (CUDA when nvcc is found) on a machine where nvidia-smi lists a GPU and OFF on one
# where it does not: nothing there could run the CUDA code, and compiling it is most of the build.
moe_cuda_for_this_machine() {
  if [ -n "${MOE_WITH_CUDA:-}" ]; then
    echo "$MOE_WITH_CUDA"
  elif nvidia-smi -L >/dev/null 2>&1; then
    echo AUTO
  else
    echo OFF
  fi
}

# moe_install_and_build CUDA [TARGET...]: installs what is missing, configures $MOE_BUILD_DIR
# (default: build/ in the repo) with MOE_WITH_CUDA=CUDA (AUTO|ON|OFF, always passed: the cache
# keeps the last one) and builds the targets, or every target when none is given.
moe_install_and_build() {
  local cuda="$1"
  shift
  MOE_BUILD_DIR="${MOE_BUILD_DIR:-$MOE_ROOT/build}"
  moe_install_packages "${MOE_PACKAGES[@]}"
  # The CUDA toolkit's usual home; with AUTO, CMake builds the CUDA backend when it finds nvcc.
  if [ "$cuda" != OFF ] && ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH="/usr/local/cuda/bin:$PATH"
  fi
  cmake -S "$MOE_ROOT" -B "$MOE_BUILD_DIR" -G Ninja \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
    -DMOE_WITH_CUDA="$cuda" ${MOE_CMAKE_ARGS:-}
  cmake --build "$MOE_BUILD_DIR" ${1:+--target} "$@"
}
