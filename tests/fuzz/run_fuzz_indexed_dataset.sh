#!/usr/bin/env bash
# Builds the .idx reader's libFuzzer target with clang (-fsanitize=fuzzer,address,undefined; the
# project itself builds with GCC, so this is a separate build of just the sources the reader
# needs) and fuzzes it for a bounded time from the seeds in corpus_idx/. Fails on any finding.
#   run_fuzz_indexed_dataset.sh <clang++> <repo root> <work dir> [seconds, default 20]
# The seeds are the files make_seed_corpus.py writes; new inputs libFuzzer finds go to the work
# dir, never into the repository.
set -euo pipefail
clangxx="$1"
root="$2"
work="$3"
seconds="${4:-20}"
mkdir -p "$work/corpus"
sources=("$root/tests/fuzz/fuzz_indexed_dataset.cpp" "$root/data/indexed_dataset.cpp"
         "$root/core/error.cpp")
binary="$work/fuzz_indexed_dataset"
if [ ! -x "$binary" ] || [ -n "$(find "${sources[@]}" "$root/data/indexed_dataset.h" \
                                       "$root/core/error.h" -newer "$binary")" ]; then
  "$clangxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root" "${sources[@]}" -o "$binary.tmp"
  mv "$binary.tmp" "$binary"
fi
# The run directory takes crash-* files if there is a finding; the log says which.
cd "$work"
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  "$work/corpus" "$root/tests/fuzz/corpus_idx"
