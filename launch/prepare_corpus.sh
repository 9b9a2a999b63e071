#!/usr/bin/env bash
# Writes the default corpus, corpora/kjv.txt: the King James Bible (public domain) as printed by
# Debian's bible-kjv package, one verse per line ("Ge1:1 In the beginning ..."), about 4.4 MB.
# Idempotent: an existing file is kept. Installs bible-kjv when it is missing.
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$MOE_ROOT/launch/common.sh"

corpus="$MOE_ROOT/corpora/kjv.txt"
if [ -s "$corpus" ]; then
  exit 0
fi
moe_install_packages bible-kjv
mkdir -p "$(dirname "$corpus")"
bible -f 'Genesis1:1-Revelation22:21' > "$corpus.tmp"
mv "$corpus.tmp" "$corpus"
echo "== wrote $corpus ($(wc -c < "$corpus") bytes)"
