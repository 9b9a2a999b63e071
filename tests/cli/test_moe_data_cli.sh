#!/usr/bin/env bash
# moe-data's command line through the real binary: prepare from text, JSON Lines, directories and
# lists (one document per file, per line or per record; output independent of the thread count),
# inspect, and each bad invocation or bad file exiting non-zero with one clear message, never a
# crash, and leaving no half-written dataset behind.
#   test_moe_data_cli.sh <moe-data>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
moe_data="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Inputs: a tree of text files, a JSON Lines file, a list.
mkdir -p tree/sub tree/empty_dir
printf 'In the beginning God created the heaven and the earth.\n' > tree/b.txt
printf 'And the earth was without form, and void.\n' > tree/sub/c.txt
printf 'And God said, Let there be light.\n' > tree/a.md
printf 'first line\n\nthird line\n' > lines.txt
printf '{"text": "caf\\u00e9"}\n{"id": 2, "text": "two"}\n\n' > good.jsonl
printf 'tree/b.txt\n\ngood.jsonl\n' > list.txt

prepare() { "$moe_data" prepare --tokenizer byte "$@"; }
expect zero "wrote out/tree.bin and out/tree.idx: 3 documents, 134 tokens" \
  prepare --input tree --output out/tree
expect zero "documents  3" "$moe_data" inspect out/tree --samples 3
expect zero "--- sample 1 of 3: sequence 0 (document 0), 35 tokens" "$moe_data" inspect out/tree
# Sorted by path: a.md, b.txt, sub/c.txt.
expect zero "And God said, Let there be light.
<|endoftext|>" "$moe_data" inspect out/tree --samples 1
expect zero "2 documents" prepare --input tree --glob '*.txt' --output out/txt
expect zero "2 documents, 22 tokens; read" prepare --input lines.txt --split-lines --output out/lines
expect zero "skipped 1 empty documents" prepare --input lines.txt --split-lines --output out/lines
expect zero "3 documents" prepare --files-from list.txt --output out/list
expect zero "caf$(printf '\303\251')<|endoftext|>" "$moe_data" inspect out/list --samples 3
expect zero "every token id is below the vocabulary size 257" \
  "$moe_data" inspect out/tree --check-vocab
expect zero "[         4,          8)          2" "$moe_data" inspect out/list
for threads in 1 3; do
  prepare --input tree --input good.jsonl --input lines.txt --split-lines --threads $threads \
    --output out/threads$threads >/dev/null || fail "prepare --threads $threads"
done
cmp -s out/threads1.bin out/threads3.bin && cmp -s out/threads1.idx out/threads3.idx ||
  fail "the output depends on --threads"

# Bad invocations and inputs: nothing is written.
expect nonzero "A subcommand is required" "$moe_data"
expect nonzero "--output is required" prepare --input tree
expect nonzero "prepare needs at least one --input" prepare --output out/none
expect nonzero "input '/no/such/file' does not exist" prepare --input /no/such/file --output out/none
expect nonzero "cannot open --files-from list 'missing.txt'" prepare --files-from missing.txt --output out/none
expect nonzero "directory 'tree' holds no regular file whose name matches --glob '*.py'" \
  prepare --input tree --glob '*.py' --output out/none
expect nonzero "directory 'tree/empty_dir' holds no regular file" \
  prepare --input tree/empty_dir --output out/none
expect nonzero "unknown tokenizer 'gpt5'" \
  "$moe_data" prepare --input tree --tokenizer gpt5 --output out/none
printf '{"text": "fine"}\n{"text": "unterminated}\n' > bad.jsonl
expect nonzero "bad.jsonl:2: column 10: the string starting here never ends" \
  prepare --input bad.jsonl --output out/none
printf '{"text": "fine"}\n\ntext: yaml, not json\n' > yaml.jsonl
expect nonzero "yaml.jsonl:3: column 1: expected a JSON object ('{'), found 't'" \
  prepare --input yaml.jsonl --output out/none
expect nonzero "good.jsonl:1: column 1: the object has no key \"content\" (its keys: \"text\")" \
  prepare --input good.jsonl --jsonl-key content --output out/none
: > empty.txt
expect nonzero "the inputs hold no document to write (1 empty ones skipped)" \
  prepare --input empty.txt --output out/none
ls out/none* >/dev/null 2>&1 && fail "a failed prepare left files: $(ls out/none*)"

# Bad datasets.
expect nonzero "cannot open 'out/missing.idx'" "$moe_data" inspect out/missing
cp out/tree.bin bad.bin && cp out/tree.idx bad.idx
truncate -s -1 bad.bin
expect nonzero "bad.idx: sequence 2 (pointer at byte 62) covers bytes [182, 268) of bad.bin, which has 267 bytes" \
  "$moe_data" inspect bad
cp out/tree.bin bad.bin && printf 'trailing' >> bad.bin
expect nonzero "bad.idx: its 3 sequences cover bytes [0, 268) of bad.bin, which has 276 bytes" \
  "$moe_data" inspect bad
cp out/lines.idx bad.idx  # another dataset's index beside tree's tokens
expect nonzero "bad.idx: its 2 sequences cover bytes [0, 44) of bad.bin, which has 276 bytes" \
  "$moe_data" inspect bad
cp out/tree.bin bad.bin && printf 'XX' | dd of=bad.idx bs=1 seek=0 conv=notrunc status=none
expect nonzero "bad.idx: byte 0: magic is 58 58 49 44" "$moe_data" inspect bad
cp out/tree.idx bad.idx && printf '\007' | dd of=bad.idx bs=1 seek=9 conv=notrunc status=none
expect nonzero "bad.idx: byte 9: version is 7, expected 1" "$moe_data" inspect bad
cp out/tree.idx bad.idx && printf '\011' | dd of=bad.idx bs=1 seek=17 conv=notrunc status=none
expect nonzero "bad.idx: byte 17: dtype code is 9, expected 1..8" "$moe_data" inspect bad
: > bad.idx
expect nonzero "bad.idx: the file is empty" "$moe_data" inspect bad
# One u16 sequence holding id 300 (0x012c), which the 257-id byte vocabulary lacks.
printf 'MMIDIDX\0\0\1\0\0\0\0\0\0\0\10\1\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0' > vocab.idx
printf '\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1\0\0\0\0\0\0\0' >> vocab.idx
printf '\054\001' > vocab.bin
expect zero "tokens     1" "$moe_data" inspect vocab
expect nonzero "vocab.bin: sequence 0, token 0 (byte 0) is id 300, outside the tokenizer's vocabulary [0, 257)" \
  "$moe_data" inspect vocab --check-vocab

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
