#!/usr/bin/env bash
# Builds three real text domains as indexed datasets (byte tokenizer), each split into training
# and validation by document: corpora/<domain>_train.{bin,idx} and corpora/<domain>_val.{bin,idx}.
#   bible   the King James Bible (Debian bible-kjv, via launch/prepare_corpus.sh): one document
#           per book, 66
#   austen  Jane Austen's six novels (Debian r-cran-janeaustenr): one document per chapter, 269.
#           Only the package's data files are needed: they are unpacked from the .deb (apt-get
#           download) and read without R by tools/corpus_documents.py, so R is never installed.
#   code    the Python 3.11 standard library's .py sources under /usr/lib/python3.11
#           (dist-packages excluded): one document per file
# Every 20th document (the 20th, 40th, ... in corpus order) goes to validation, the rest to
# training: deterministic, and no document is in both. Idempotent: a domain whose four files exist
# is kept. Builds moe-data (alone) first when $MOE_BUILD_DIR/moe-data is missing.
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$MOE_ROOT/launch/common.sh"
MOE_BUILD_DIR="${MOE_BUILD_DIR:-$MOE_ROOT/build}"
corpora="$MOE_ROOT/corpora"
moe_data="$MOE_BUILD_DIR/moe-data"
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3

domain_done() {
  local f
  for f in "$corpora/$1"_{train,val}.{bin,idx}; do [ -s "$f" ] || return 1; done
}
domains=()
for domain in bible austen code; do domain_done "$domain" || domains+=("$domain"); done

[ -x "$moe_data" ] || moe_install_and_build "$(moe_cuda_for_this_machine)" moe-data
if [ ${#domains[@]} -gt 0 ]; then
  moe_install_packages bible-kjv python3
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT

  for domain in "${domains[@]}"; do
    echo "== $domain"
    case "$domain" in
      bible)
        bash "$MOE_ROOT/launch/prepare_corpus.sh"  # corpora/kjv.txt
        "$python" "$MOE_ROOT/tools/corpus_documents.py" bible "$corpora/kjv.txt" "$work/bible"
        find "$work/bible" -type f | LC_ALL=C sort > "$work/bible.list"
        ;;
      austen)
        data=/usr/lib/R/site-library/janeaustenr/data
        if [ ! -s "$data/Rdata.rdb" ]; then
          data="$corpora/.cache/janeaustenr/usr/lib/R/site-library/janeaustenr/data"
          if [ ! -s "$data/Rdata.rdb" ]; then
            mkdir -p "$corpora/.cache"
            sudo=""
            [ "$(id -u)" -ne 0 ] && sudo="sudo"
            (cd "$work" && { apt-get download -qq r-cran-janeaustenr 2>/dev/null ||
              { $sudo apt-get update -qq && apt-get download -qq r-cran-janeaustenr; }; })
            dpkg-deb -x "$work"/r-cran-janeaustenr_*.deb "$corpora/.cache/janeaustenr"
          fi
        fi
        "$python" "$MOE_ROOT/tools/corpus_documents.py" austen "$data" "$work/austen"
        find "$work/austen" -type f | LC_ALL=C sort > "$work/austen.list"
        ;;
      code)
        find /usr/lib/python3.11 -path /usr/lib/python3.11/dist-packages -prune -o \
          -type f -name '*.py' -print | LC_ALL=C sort > "$work/code.list"
        ;;
    esac
    awk 'NR % 20 == 0' "$work/$domain.list" > "$work/${domain}_val.list"
    awk 'NR % 20 != 0' "$work/$domain.list" > "$work/${domain}_train.list"
    for split in train val; do
      "$moe_data" prepare --files-from "$work/${domain}_$split.list" --tokenizer byte \
        --output "$corpora/${domain}_$split"
    done
  done
fi

echo "== corpora (byte tokens, u16: 2 bytes each)"
for domain in bible austen code; do
  for split in train val; do
    prefix="$corpora/${domain}_$split"
    "$moe_data" inspect "$prefix" --samples 0 |
      awk -v name="${domain}_$split" '/^documents/ {d = $2} /^tokens/ {t = $2}
        END {printf "%-13s %5d documents %10d tokens\n", name, d, t}'
  done
done
