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

# Installs what is missing and builds into $MOE_BUILD_DIR (default: build/ in the repo).
moe_install_and_build() {
  MOE_BUILD_DIR="${MOE_BUILD_DIR:-$MOE_ROOT/build}"
  moe_install_packages "${MOE_PACKAGES[@]}"
  # The CUDA toolkit's usual home; CMake builds the CUDA backend when it finds nvcc (MOE_WITH_CUDA=AUTO).
  if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH="/usr/local/cuda/bin:$PATH"
  fi
  cmake -S "$MOE_ROOT" -B "$MOE_BUILD_DIR" -G Ninja \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
    ${MOE_CMAKE_ARGS:-}
  cmake --build "$MOE_BUILD_DIR"
}
