#!/usr/bin/env bash
# Builds one libFuzzer target with clang (-fsanitize=fuzzer,address,undefined; the project itself
# builds with GCC, so this is a separate build of just the sources the target needs) and fuzzes it
# for a bounded time from its seed corpus. Fails on any finding.
#   run_fuzz.sh <clang++> <repo root> <work dir> <seconds> <target> <seed dir> <source>...
# <target> names tests/fuzz/<target>.cpp; sources are relative to the repo root. New inputs that
# libFuzzer finds go to the work dir, never into the repository.
set -euo pipefail
clangxx="$1"
root="$2"
work="$3"
seconds="$4"
target="$5"
seeds="$root/$6"
shift 6
mkdir -p "$work/corpus"
sources=("$root/tests/fuzz/$target.cpp")
for source in "$@"; do sources+=("$root/$source"); done
binary="$work/$target"
if [ ! -x "$binary" ] || [ -n "$(find "${sources[@]}" "$root/data" "$root/core" -name '*.h' \
                                       -newer "$binary" -o -name '*.inc' -newer "$binary")" ] \
   || [ -n "$(find "${sources[@]}" -newer "$binary")" ]; then
  "$clangxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root" "${sources[@]}" -o "$binary.tmp"
  mv "$binary.tmp" "$binary"
fi
# The run directory takes crash-* files if there is a finding; the log says which.
cd "$work"
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  "$work/corpus" "$seeds"
