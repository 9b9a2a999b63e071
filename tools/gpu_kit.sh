#!/usr/bin/env bash
# The GPU kit: everything a lent GPU machine lacks to run every CUDA check and the GPU benchmarks
# in one command (docs/gpu.md has the device call).
#   tools/gpu_kit.sh pack DIR        here: build for sm_90, write the kit to DIR (at most 56 MiB);
#                                    MOE_KIT_BUILD=FOLDER packs that CUDA build as it is instead
#   tools/gpu_kit.sh run DIR OUT     there: unpack DIR, run every part, write logs + summary to OUT
#   tools/gpu_kit.sh selftest DIR    here, no GPU: libraries resolve, size, run stops before the GPU
#   tools/gpu_kit.sh rehearse DIR OUT  here, as root: run on the CPU at a tiny size (MOE_KIT_CPU=1)
#                                    with this machine's copies of the kit's libraries hidden
# Design decisions:
# - Prebuilt binaries, not packages to build there: the device has nvcc but none of our Debian
#   libraries, and a build there would spend minutes of a 9-minute command. pack builds
#   moe-train, moe-data and the cuda-labelled test executables for sm_90 and packs, found with ldd,
#   every library they (and Open MPI's mpirun and plugins) load, but the ones the device image has:
#   glibc, libstdc++, libgcc_s (newer there) and CUDA's runtime, cuBLAS(Lt) and NCCL (the
#   toolkit in /usr/local/cuda and the pip wheels under site-packages/nvidia/*/lib; run finds them).
# - The kit is one tar.xz: uncompressed it is about 90 MiB (OpenBLAS alone 35 MiB), compressed
#   about a third; run and selftest unpack it into a scratch folder (xz, or Python's tarfile).
# - Open MPI is relocated with OPAL_PREFIX (its plugins and help files under ompi/ as under /usr)
#   and PMIx with PMIX_INSTALL_PREFIX; plugins that need libraries we do not pack (UCX, libfabric,
#   verbs, PSM, OpenSHMEM) are left out, so shared memory and TCP carry MPI.
# - ctest's own files name this machine's paths: pack writes the cuda tests' commands to tests.tsv
#   with @KIT@ and @SRC@ in place of the build and source folders, and run starts them itself.
# - run never stops early for a failure: each part has a time limit (timeout) inside one overall
#   budget, and summary.md is rewritten after every part and on exit, so a command killed from
#   outside still brings back what finished. OUT holds at most 8 files (the device call brings no
#   more back).
# - MOE_KIT_CPU=1 runs the same commands on the CPU at a tiny size (train.device cpu, 2 layers,
#   short sequences), so the whole path and the summary are checked on a machine without a GPU.
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIMIT_MIB="${MOE_KIT_LIMIT_MIB:-56}"
MODELS=(dense-125m mixtral-style fine-grained)

die() { echo "gpu_kit: $*" >&2; exit 2; }
usage() {
  sed -n "4,9p" "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
  exit 2
}

# Libraries the device image provides itself (glibc, the compiler's runtime, CUDA's libraries).
device_provides() {
  [[ "$1" =~ ^(ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1|libcuda\.so\.1|libcudart\.so\.13|libcublas\.so\.13|libcublasLt\.so\.13|libnccl\.so\.2|libcudnn[a-z_]*\.so\.9)$ ]]
}

# ---------------------------------------------------------------------------------------- pack

# Copies library $1 (a path) into $2/lib under the name it is loaded by, with its real file beside.
copy_library() {
  local path="$1" lib="$2/lib" name real
  name="$(basename "$path")"
  real="$(readlink -f "$path")"
  [ -e "$lib/$(basename "$real")" ] || cp "$real" "$lib/"
  [ "$name" = "$(basename "$real")" ] || ln -sf "$(basename "$real")" "$lib/$name"
}

# Every library path the ELF files $@ load (ldd, transitively), but those the device provides.
library_closure() {
  ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
    while read -r name path; do device_provides "$name" || echo "$path"; done | sort -u
}

OMPI_LIB=/usr/lib/x86_64-linux-gnu/openmpi/lib
PMIX_PREFIX=/usr/lib/x86_64-linux-gnu/pmix2

# Open MPI's plugins whose libraries are ours or Open MPI's own (not UCX, libfabric, verbs, ...).
ompi_plugins() {
  local plugin extra
  for plugin in "$OMPI_LIB"/openmpi3/mca_*.so; do
    extra="$(library_closure "$plugin" | grep -vE '/lib(mpi|open-pal|open-rte|mca_common_(sm|monitoring|ompio)|pmix|munge|hwloc|event[a-z_]*-2\.1|z|udev|hdf5_openmpi|sz|aec)\.so' || true)"
    [ -z "$extra" ] && echo "$plugin"
  done
}

# The cuda-labelled tests of build folder $1 as tab-separated lines: name, timeout, environment
# (- for none), command (shell words; @KIT@/bin and @SRC@ stand for the kit's programs and the
# source tree).
write_test_list() {
  (cd "$1" && ctest -L cuda --show-only=json-v1) | python3 -c '
import json, os, shlex, sys
build, src = sys.argv[1], sys.argv[2]
for t in json.load(sys.stdin)["tests"]:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    words = []
    for w in t["command"]:
        if w.startswith(build + "/"):
            w = "@KIT@/bin/" + os.path.basename(w)
        elif os.path.basename(w) in ("mpiexec", "mpirun"):
            w = "mpiexec"
        words.append(w.replace(src, "@SRC@"))
    print("\t".join([t["name"], str(int(props.get("TIMEOUT", 600))),
                     " ".join(props.get("ENVIRONMENT", [])) or "-", shlex.join(words)]))
' "$(cd "$1" && pwd)" "$MOE_ROOT"
}

cmd_pack() {
  [ $# -eq 1 ] || usage
  local dir="$1" build="${MOE_KIT_BUILD:-}" start stage root
  start=$(date +%s)
  if [ -z "$build" ]; then
    build="$MOE_ROOT/build-kit-cuda"
    if [ ! -f "$build/CMakeCache.txt" ]; then
      local launcher=()
      command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
                                                -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
      cmake -S "$MOE_ROOT" -B "$build" -G Ninja -DMOE_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DMOE_BUILD_BENCH=OFF "${launcher[@]}"
    fi
    cmake --build "$build" --target moe-train moe-data cuda_tests cuda_training_tests \
      nccl_communicator_tests
    echo "gpu_kit: built in $(( $(date +%s) - start )) s"
  fi
  grep -q '^MOE_NCCL_LIBRARY:FILEPATH=/' "$build/CMakeCache.txt" ||
    die "$build is not a CUDA build (configure it with -DMOE_WITH_CUDA=ON)"

  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' RETURN
  root="$stage/moe-kit"
  mkdir -p "$root"/{bin,lib} "$root/ompi/bin" "$root/ompi/lib/x86_64-linux-gnu/openmpi/lib" \
    "$root/ompi/share" "$root/pmix/lib" "$root/pmix/share"
  write_test_list "$build" > "$root/tests.tsv"
  local programs=("$build/moe-train" "$build/moe-data") p
  for p in $(cut -f4 "$root/tests.tsv" | tr ' ' '\n' | sed -n 's|^@KIT@/bin/||p' | sort -u); do
    programs+=("$build/tests/$p")
  done
  for p in "${programs[@]}"; do strip -o "$root/bin/$(basename "$p")" "$p"; done

  # Open MPI: mpirun, orted, the plugins we can carry, help files; PMIx's plugins and help files.
  cp "$(readlink -f /usr/bin/orterun)" "$root/ompi/bin/orterun"
  cp /usr/bin/orted "$root/ompi/bin/"
  ln -s orterun "$root/ompi/bin/mpirun"
  ln -s orterun "$root/ompi/bin/mpiexec"
  mkdir "$root/ompi/lib/x86_64-linux-gnu/openmpi/lib/openmpi3"
  local plugins=()
  mapfile -t plugins < <(ompi_plugins)
  cp "${plugins[@]}" "$root/ompi/lib/x86_64-linux-gnu/openmpi/lib/openmpi3/"
  cp -r /usr/share/openmpi "$root/ompi/share/"
  cp -r "$PMIX_PREFIX/lib/pmix" "$root/pmix/lib/"
  cp -r "$PMIX_PREFIX/share/pmix" "$root/pmix/share/"

  local lib
  for lib in $(library_closure "$root"/bin/* "$root"/ompi/bin/orte* "${plugins[@]}" \
                 "$root"/pmix/lib/pmix/*.so); do
    copy_library "$lib" "$root"
  done
  { echo "MoEForge GPU kit: commit $(git -C "$MOE_ROOT" rev-parse --short HEAD)$(
      git -C "$MOE_ROOT" diff --quiet HEAD || echo ' (with uncommitted changes)'), packed $(
      date -u +%Y-%m-%dT%H:%MZ), sm_90"
    echo "uncompressed: $(du -sh "$root" | cut -f1)"
    (cd "$root" && find . -type f -printf '%s\t%p\n' | sort -k2)
  } > "$root/kit.txt"

  mkdir -p "$dir"
  rm -f "$dir/moe-kit.tar.xz"
  tar -C "$stage" -cf - moe-kit | xz -T0 -6 > "$dir/moe-kit.tar.xz"
  cp "$root/kit.txt" "$dir/kit.txt"
  local size
  size=$(du -sb "$dir" | cut -f1)
  echo "gpu_kit: $dir holds $((size / 1048576)) MiB ($(sed -n 2p "$root/kit.txt")) after $(( $(date +%s) - start )) s"
  [ "$size" -le $((LIMIT_MIB * 1048576)) ] || die "$dir is over $LIMIT_MIB MiB"
}

# ---------------------------------------------------------------------------------------- unpack

# Unpacks kit folder $1 into $2 (tar with xz where it exists, else Python's tarfile).
unpack() {
  [ -f "$1/moe-kit.tar.xz" ] || die "$1/moe-kit.tar.xz not found: run 'tools/gpu_kit.sh pack $1' first"
  mkdir -p "$2"
  if command -v xz >/dev/null; then
    tar -C "$2" -xJf "$1/moe-kit.tar.xz"
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      "$1/moe-kit.tar.xz" "$2"
  fi
  [ -d "$2/moe-kit/bin" ] || die "$1/moe-kit.tar.xz holds no moe-kit/bin"
}

# NEEDED entries of the ELF files under kit root $1 that neither the kit nor the device provides.
unresolved_libraries() {
  local f name
  while IFS= read -r -d '' f; do
    head -c 4 "$f" | grep -q 'ELF' || continue
    for name in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      device_provides "$name" || [ -e "$1/lib/$name" ] || echo "${f#"$1"/}: $name"
    done
  done < <(find "$1" -type f -print0)
}

# ------------------------------------------------------------------------------------------ run

# Libraries that ldd cannot find for the ELF files $2..., or finds outside kit root $1 though the
# device does not provide them (a copy of this machine's would hide a library missing there).
libraries_outside() {
  local root="$1"
  shift
  { ldd "$@" 2>&1 || true; } | awk '$2 == "=>" {print $1, $3}' | sort -u | while read -r name path; do
    if [ "$path" = "not" ]; then echo "$name (not found)"
    elif ! device_provides "$name" && [[ "$path" != "$root"/* ]]; then echo "$name ($path)"; fi
  done
}

SECONDS_AT_START=$SECONDS
remaining() { echo $(( BUDGET - (SECONDS - SECONDS_AT_START) )); }

# Runs "$@" with a time limit of min($1, what is left of the budget less a reserve); appends its
# output to log $2 under a header. Prints ok, FAILED (rc N), TIMEOUT (N s) or SKIPPED (no time).
run_limited() {
  local limit="$1" log="$2" left rc=0 t0
  shift 2
  left=$(( $(remaining) - 15 ))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then echo "SKIPPED (no time left)"; return; fi
  echo "==== $(date -u +%H:%M:%S) limit ${limit}s: $*" >> "$log"
  t0=$SECONDS
  timeout -k 5 "$limit" "$@" < /dev/null >> "$log" 2>&1 || rc=$?
  echo "==== exit $rc after $((SECONDS - t0)) s" >> "$log"
  case $rc in
    0) echo "ok ($((SECONDS - t0)) s)" ;;
    124|137) echo "TIMEOUT (${limit} s)" ;;
    *) echo "FAILED (rc $rc, $((SECONDS - t0)) s)" ;;
  esac
}

# The CUDA library folders of the device: the toolkit's and the pip wheels' (nvidia/*/lib).
cuda_library_dirs() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && echo "$d"
  done
  command -v python3 >/dev/null || return 0
  python3 -c 'import glob, site, sys
dirs = site.getsitepackages() + [site.getusersitepackages()] + sys.path
for d in dict.fromkeys(dirs):
    for lib in sorted(glob.glob(d + "/nvidia/*/lib")):
        print(lib)' 2>/dev/null || true
}

# Peak dense bf16 TFLOP/s of a GPU named $1 (datasheet figures; MOE_KIT_PEAK_TFLOPS overrides).
peak_tflops() {
  if [ -n "${MOE_KIT_PEAK_TFLOPS:-}" ]; then echo "$MOE_KIT_PEAK_TFLOPS"; return; fi
  case "$1" in
    *H100*PCIe*) echo 756 ;;
    *H100*NVL*) echo 835 ;;
    *H100*|*H200*|*GH200*) echo 989 ;;
    *A100*) echo 312 ;;
    *) echo "" ;;
  esac
}

# One row of the training table from moe-train log $1: tok/s and step time of the last logged
# interval (warm), MFU from the model's training FLOPs per token, the device's peak memory.
train_row() {
  awk -v peak="$PEAK" '
    /training FLOPs per token/ { for (i = 1; i <= NF; i++) if ($i == "training") flops = $(i - 1) }
    / steps of [0-9]+ tokens/ { for (i = 1; i <= NF; i++) if ($i == "tokens") tokens = $(i - 1) }
    /^.*step [0-9]+\/[0-9]+ \|/ {
      for (i = 1; i <= NF; i++) { if ($i == "tok/s") toks = $(i - 1); if ($i == "step") step = $(i + 1) }
    }
    /done: / {
      sub(/.*peak memory /, ""); mem = $0; sub(/; run .*/, "", mem)
    }
    END {
      if (toks == "") { printf "| - | - | - | - |"; exit }
      ms = toks > 0 ? 1000 * tokens / toks : 0
      mfu = (peak != "" && flops != "") ? sprintf("%.1f%%", 100 * flops * toks / (peak * 1e12)) : "n/a"
      printf "| %s | %.0f | %.1f | %s | %s |", step, toks, ms, mfu, (mem == "" ? "-" : mem)
    }' "$1"
}

# gtest's closing counts from its output on stdin: "N passed, N skipped, N failed: names".
gtest_counts() {
  awk '/^\[  (PASSED|SKIPPED|FAILED) +\] [0-9]+ tests?[,.]/ { n[$2] = $4 }
       /^\[  FAILED  \] [A-Za-z0-9_\/.]+$/ { failed = failed " " $4 }
       END { if (length(n) == 0) { print "-"; exit }
             printf "%d passed, %d skipped, %d failed%s\n", n["PASSED"], n["SKIPPED"], n["FAILED"],
                    failed == "" ? "" : ":" failed }'
}

write_summary() {
  {
    echo "# GPU kit run $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "$KIT_FACTS"
    echo
    echo "device: ${DEVICE_FACTS:-none}"
    echo "status: $STATUS (after $((SECONDS - SECONDS_AT_START)) s of a ${BUDGET} s budget)"
    echo
    echo "## cuda-labelled tests"
    echo
    echo "| test | result | gtest |"
    echo "| --- | --- | --- |"
    printf '%s\n' "${TEST_ROWS[@]}"
    echo
    echo "## moe-train (${STEPS} steps; figures of the last logged interval; MFU against ${PEAK:-?} TFLOP/s dense bf16)"
    echo
    echo "| model | precision | result | step | tok/s | step ms | MFU | peak memory |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${TRAIN_ROWS[@]}"
    echo
    echo "## PyTorch reference"
    echo
    echo "| model | precision | mode | result | figures (its JSON) |"
    echo "| --- | --- | --- | --- | --- |"
    printf '%s\n' "${REF_ROWS[@]}"
  } > "$OUT/summary.md"
}

cmd_run() {
  [ $# -eq 2 ] || usage
  local kit_dir out
  kit_dir="$(cd "$1" 2>/dev/null && pwd)" || die "kit folder $1 not found"
  mkdir -p "$2"
  out="$(cd "$2" && pwd)"
  OUT="$out"
  BUDGET="${MOE_KIT_BUDGET_S:-530}"
  STEPS="${MOE_KIT_STEPS:-20}"
  STATUS="started"; KIT_FACTS="kit: ?"; DEVICE_FACTS=""; PEAK=""
  TEST_ROWS=(); TRAIN_ROWS=(); REF_ROWS=()
  UNPACKED="${MOE_KIT_UNPACK:-${TMPDIR:-/tmp}/moe-kit-$$}"
  trap 'STATUS="${STATUS/started/stopped early}"; write_summary; cat "$OUT/summary.md"; rm -rf "$UNPACKED"' EXIT
  local setup="$OUT/setup.log"
  : > "$setup"

  local root="$UNPACKED"
  unpack "$kit_dir" "$root"
  root="$root/moe-kit"
  KIT_FACTS="$(head -2 "$root/kit.txt" | paste -sd ';' -)"
  export PATH="$root/bin:$root/ompi/bin:$PATH"
  export OPAL_PREFIX="$root/ompi" PMIX_INSTALL_PREFIX="$root/pmix"
  export GTEST_COLOR=no OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp
  local cuda_dirs
  cuda_dirs="$(cuda_library_dirs | paste -sd: -)"
  export LD_LIBRARY_PATH="$root/lib${cuda_dirs:+:$cuda_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  { echo "kit: $KIT_FACTS"; echo "unpacked to $root"; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    echo "--- libraries the programs load (ldd)"; ldd "$root"/bin/* 2>&1 || true
  } >> "$setup"
  local outside
  outside="$(libraries_outside "$root" "$root"/bin/* "$root"/ompi/bin/orte*)"
  if [ -n "$outside" ]; then
    STATUS="libraries not found or not from the kit: $(paste -sd' ' - <<< "$outside")"
    echo "gpu_kit: $STATUS (setup.log lists what each program loads)" >&2
    exit 3
  fi
  local cpu="${MOE_KIT_CPU:-0}" smi="${MOE_KIT_SMI:-nvidia-smi}"
  if [ "$cpu" = 1 ]; then
    DEVICE_FACTS="CPU (MOE_KIT_CPU=1: the same commands on the CPU at a tiny size)"
  else
    if ! command -v "$smi" >/dev/null || ! "$smi" -L 2>/dev/null | grep -q '^GPU '; then
      STATUS="stopped: no GPU here ($smi not found or lists no GPU); the kit unpacked and its libraries resolve; run this on the device machine (docs/gpu.md), or set MOE_KIT_CPU=1 for the CPU rehearsal"
      echo "gpu_kit: $STATUS" >&2
      exit 3
    fi
    "$smi" --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit \
      --format=csv > "$OUT/gpu.txt" 2>&1 || true
    { echo; "$smi"; echo; "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" --version 2>&1 | tail -2; } >> "$OUT/gpu.txt" 2>&1 || true
    DEVICE_FACTS="$(sed -n 2p "$OUT/gpu.txt")"
    PEAK="$(peak_tflops "$(cut -d, -f1 <<< "$DEVICE_FACTS")")"
  fi
  [ "$cpu" = 1 ] && PEAK="${MOE_KIT_PEAK_TFLOPS:-}"

  # Token data: the tree's own C++ sources as one byte-level dataset (throughput does not depend on
  # which ids occur; the configs' corpora/ are not in the tree that travels).
  local data="$root/data"
  mkdir -p "$data"
  local inputs=() d
  for d in core config formats kernels parallel layers data checkpoint upcycling trainer tests bench; do
    [ -d "$MOE_ROOT/$d" ] && inputs+=(--input "$MOE_ROOT/$d")
  done
  moe-data prepare "${inputs[@]}" --glob '*.cpp' --tokenizer byte --output "$data/src" >> "$setup" 2>&1 ||
    { STATUS="moe-data prepare failed (setup.log)"; exit 3; }
  STATUS="running"
  write_summary

  # Part 1: every cuda-labelled test, each with its own limit.
  local scratch="$root/scratch" name timeout envs words result
  mkdir -p "$scratch"
  : > "$OUT/ctest.log"
  while IFS=$'\t' read -r name timeout envs words; do
    local limit="${MOE_KIT_TEST_TIMEOUT:-150}" cmd=()
    [ "$timeout" -lt "$limit" ] && limit=$timeout
    [ "$envs" = - ] && envs=""
    words="${words//@KIT@/$root}"
    eval "cmd=(${words//@SRC@/$MOE_ROOT})"
    local mark
    mark=$(wc -l < "$OUT/ctest.log")
    result="$(cd "$scratch" && run_limited "$limit" "$OUT/ctest.log" env $envs "${cmd[@]}")"
    local gtest
    gtest="$(tail -n +"$((mark + 1))" "$OUT/ctest.log" | gtest_counts)"
    TEST_ROWS+=("| $name | $result | ${gtest:--} |")
    write_summary
  done < "$root/tests.tsv"

  # Part 2: the three GPU models in bf16 and in f32 with TF32.
  local sets=(--set "data.train=$data/src" --set "data.valid=$data/src" --set "train.steps=$STEPS"
              --set "train.warmup_steps=$((STEPS / 2))" --set "log.interval=${MOE_KIT_LOG_INTERVAL:-5}"
              --set train.eval_interval=0)
  [ "$cpu" = 1 ] && sets+=(--set train.device=cpu --set model.n_layers=2 --set moe.first_k_dense=1
                           --set model.vocab_size=512 --set data.seq_len=64
                           --set train.micro_batch_size=1)
  : > "$OUT/train.log"
  local precision model log
  for precision in bf16 f32; do
    for model in "${MODELS[@]}"; do
      local extra=(--set "train.precision=$precision")
      [ "$precision" = f32 ] && extra+=(--set train.tf32=true)
      [ "$cpu" = 1 ] && [ "$model" = dense-125m ] && extra+=(--set moe.first_k_dense=2)
      log="$scratch/train_${model}_$precision.log"
      result="$(run_limited "${MOE_KIT_TRAIN_TIMEOUT:-45}" "$log" moe-train \
                --config "$MOE_ROOT/configs/gpu/$model.yaml" "${sets[@]}" "${extra[@]}")"
      cat "$log" >> "$OUT/train.log"
      TRAIN_ROWS+=("| $model | $precision | $result $(train_row "$log")")
      write_summary
    done
  done

  # Part 3: the PyTorch reference on the same models, when the tree has it.
  local reference="${MOE_KIT_REFERENCE:-$MOE_ROOT/bench/reference/moe_reference_gpu.py}" mode
  if [ ! -f "$reference" ]; then
    REF_ROWS+=("| - | - | - | not run: $reference is not in the tree | - |")
  else
    : > "$OUT/reference.log"; : > "$OUT/reference.jsonl"
    local ref_steps="$STEPS" ref_precisions=(bf16 f32) ref_modes=(eager compile)
    [ "$cpu" = 1 ] && ref_modes=(eager)
    for mode in "${ref_modes[@]}"; do
      for precision in "${ref_precisions[@]}"; do
        [ "$mode" = compile ] && [ "$precision" = f32 ] && continue
        for model in "${MODELS[@]}"; do
          local json="$scratch/ref_${model}_${precision}_$mode.json"
          result="$(run_limited "${MOE_KIT_REF_TIMEOUT:-60}" "$OUT/reference.log" \
                    env PYTHONUNBUFFERED=1 python3 "$reference" --config "$MOE_ROOT/configs/gpu/$model.yaml" \
                    --steps "$ref_steps" --precision "$precision" --mode "$mode" --json "$json" \
                    ${MOE_KIT_REF_ARGS:-})"
          local figures="-"
          if [ -s "$json" ]; then
            figures="$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items()
                if isinstance(v, (int, float, str)) and len(str(v)) < 40))' "$json" 2>/dev/null || echo unreadable)"
            tr -d '\n' < "$json" >> "$OUT/reference.jsonl"; echo >> "$OUT/reference.jsonl"
          fi
          REF_ROWS+=("| $model | $precision | $mode | $result | $figures |")
          write_summary
        done
      done
    done
  fi
  STATUS="finished"
}

# ------------------------------------------------------------------------------------- rehearse

# run with MOE_KIT_CPU=1 in a mount namespace where this machine's copies of the kit's libraries
# and its Open MPI and PMIx folders are hidden (empty files and folders mounted over them), as on
# the device. Needs root (unshare -m).
cmd_rehearse() {
  [ $# -eq 2 ] || usage
  local scratch
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' RETURN
  unpack "$1" "$scratch"
  mkdir "$scratch/empty"
  local hide=() name system
  for name in $(ls "$scratch/moe-kit/lib"); do
    for system in /lib/x86_64-linux-gnu/"$name" /usr/lib/x86_64-linux-gnu/"$name"; do
      [ -f "$system" ] && hide+=("$(readlink -f "$system")")
    done
  done
  printf '%s\n' "${hide[@]}" | sort -u > "$scratch/hide.txt"
  MOE_KIT_CPU=1 MOE_KIT_STEPS="${MOE_KIT_STEPS:-2}" MOE_KIT_LOG_INTERVAL="${MOE_KIT_LOG_INTERVAL:-1}" \
  MOE_KIT_TRAIN_TIMEOUT="${MOE_KIT_TRAIN_TIMEOUT:-120}" MOE_KIT_BUDGET_S="${MOE_KIT_BUDGET_S:-1200}" \
    unshare -m bash -c '
      set -e
      while read -r f; do mount --bind /dev/null "$f"; done < "$1/hide.txt"
      for d in /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 /usr/share/openmpi \
               /etc/openmpi; do [ -d "$d" ] && mount --bind "$1/empty" "$d"; done
      echo "gpu_kit: rehearsing with $(wc -l < "$1/hide.txt") system libraries and Open MPI hidden"
      exec "$2" run "$3" "$4"' rehearse "$scratch" "${BASH_SOURCE[0]}" "$1" "$2"
}

# ------------------------------------------------------------------------------------- selftest

cmd_selftest() {
  [ $# -eq 1 ] || usage
  local dir="$1" size failures=0 scratch
  [ -d "$dir" ] || die "kit folder $dir not found"
  size=$(du -sb "$dir" | cut -f1)
  if [ "$size" -le $((LIMIT_MIB * 1048576)) ]; then
    echo "ok: $dir is $((size / 1048576)) MiB (limit $LIMIT_MIB MiB)"
  else
    echo "FAIL: $dir is $((size / 1048576)) MiB, over $LIMIT_MIB MiB"; failures=$((failures + 1))
  fi
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' RETURN
  unpack "$dir" "$scratch"
  local missing
  missing="$(unresolved_libraries "$scratch/moe-kit")"
  if [ -z "$missing" ]; then
    echo "ok: every NEEDED library of the kit's programs and libraries is in the kit or on the device"
  else
    echo "FAIL: libraries neither in the kit nor on the device:"; echo "$missing" | sed 's/^/  /'
    failures=$((failures + 1))
  fi
  local program absent=""
  for program in moe-train moe-data $(cut -f4 "$scratch/moe-kit/tests.tsv" 2>/dev/null | tr ' ' '\n' |
                                      sed -n 's|^@KIT@/bin/||p'); do
    [ -x "$scratch/moe-kit/bin/$program" ] || absent="$absent $program"
  done
  if [ -s "$scratch/moe-kit/tests.tsv" ] && [ -z "$absent" ]; then
    echo "ok: the kit has moe-train, moe-data and the programs of its $(wc -l < "$scratch/moe-kit/tests.tsv") tests"
  else
    echo "FAIL: the kit lacks tests.tsv or programs:${absent:- none}"; failures=$((failures + 1))
  fi
  local rc=0 output
  output="$(MOE_KIT_SMI=/nonexistent/nvidia-smi MOE_KIT_CPU=0 MOE_KIT_UNPACK="$scratch/run" \
            "${BASH_SOURCE[0]}" run "$dir" "$scratch/out" 2>&1)" || rc=$?
  if [ "$rc" -eq 3 ] && grep -q 'stopped: no GPU here' <<< "$output" &&
     grep -q 'stopped: no GPU here' "$scratch/out/summary.md"; then
    echo "ok: run unpacks, resolves its libraries and stops where it needs a GPU"
  else
    echo "FAIL: run did not stop at the GPU check (exit $rc):"; echo "$output" | tail -5 | sed 's/^/  /'
    failures=$((failures + 1))
  fi
  [ "$failures" -eq 0 ] && echo "selftest passed" && return 0
  echo "selftest: $failures check(s) failed"; return 1
}

[ $# -ge 1 ] || usage
verb="$1"; shift
case "$verb" in
  pack) cmd_pack "$@" ;;
  run) cmd_run "$@" ;;
  selftest) cmd_selftest "$@" ;;
  rehearse) cmd_rehearse "$@" ;;
  *) usage ;;
esac
