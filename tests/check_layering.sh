#!/usr/bin/env bash
# The layering rule of docs/architecture.md: each library folder includes only its own headers and
# those of the floors below it. Fails naming every include that breaks the rule, and any library
# folder (a top-level folder with a CMakeLists.txt) that has no rule yet: a new folder must say
# where it sits.
# Usage: tests/check_layering.sh [REPO_ROOT]
set -euo pipefail
root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

declare -A may_include=(
  [core]=""
  [config]="core"
  [formats]="core"
  [kernels]="core"
  [parallel]="core kernels"
  [data]="core config formats"
  [layers]="core config kernels parallel"
  [checkpoint]="core config formats kernels layers parallel"
  [upcycling]="core config formats kernels layers parallel checkpoint"
  [trainer]="core config formats kernels layers parallel data checkpoint upcycling"
)
not_libraries=" bench tests "

status=0
for dir in "$root"/*/; do
  folder=$(basename "$dir")
  [ -f "$dir/CMakeLists.txt" ] || continue
  case "$not_libraries" in *" $folder "*) continue ;; esac
  if [[ ! -v may_include[$folder] ]]; then
    echo "layering: $folder/ has no rule in tests/check_layering.sh (and docs/architecture.md)"
    status=1
    continue
  fi
  allowed=" $folder ${may_include[$folder]} "
  while IFS=: read -r file line text; do
    target=$(sed -E 's/.*#include "([^/"]+)\/.*/\1/' <<<"$text")
    if [[ "$allowed" != *" $target "* ]]; then
      echo "layering: ${file#"$root"/}:$line includes $target/ (allowed for $folder/:${may_include[$folder]:- nothing})"
      status=1
    fi
  done < <(grep -rnE '^#include "[^/"]+/' "$dir" --include='*.h' --include='*.cpp' \
             --include='*.cu' --include='*.cuh' --include='*.inc' || true)
done
[ "$status" -eq 0 ] && echo "layering: every include follows the rule"
exit "$status"
