#!/usr/bin/env bash
# Byte-level BPE against Hugging Face tokenizers (the Python package, Rust inside) on the same text
# and the same tokenizer.json, one after the other in one run: encoding MB/s on one thread and on
# all threads, training time, and a check that both give the same ids (token count and checksum).
#   bench/bench_tokenizer.sh
# Environment: VOCAB (50257), THREADS (nproc), MB (16: size of the text), MOE_BUILD_DIR (build),
# PYTHON (python3; needs `pip install tokenizers`). The text is corpora/kjv.txt followed by the
# Python standard library's sources (English prose, then code), cut at MB megabytes; the tokenizer
# is trained on it by `moe-data train-tokenizer`. Documents are runs of whole lines of at least
# 4 KB, encoded by our threads in bench_tokenizer and by HF's encode_batch (rayon) in Python.
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$MOE_ROOT"
VOCAB="${VOCAB:-50257}"
THREADS="${THREADS:-$(nproc)}"
MB="${MB:-16}"
BUILD="${MOE_BUILD_DIR:-build}"
PYTHON="${PYTHON:-python3}"

bash launch/prepare_corpus.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stdlib="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"
{
  cat corpora/kjv.txt
  find "$stdlib" -name '*.py' -not -path '*-packages/*' | LC_ALL=C sort | xargs cat
} 2> /dev/null | head -c "$((MB * 1000000))" > "$work/text.txt" || true

start=$(date +%s.%N)
"$BUILD/moe-data" train-tokenizer --input "$work/text.txt" --vocab-size "$VOCAB" \
  --output "$work/tokenizer.json" > /dev/null
train_s=$(echo "$(date +%s.%N) - $start" | bc)
"$BUILD/bench/bench_tokenizer" --tokenizer "$work/tokenizer.json" --text "$work/text.txt" \
  --threads "$THREADS" --benchmark_format=json --benchmark_out="$work/ours.json" \
  --benchmark_out_format=json > "$work/ours.txt"

"$PYTHON" - "$work" "$THREADS" "$VOCAB" "$train_s" <<'PY'
import json, os, subprocess, sys, time

work, threads, vocab, train_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
text_path, tokenizer_path = f"{work}/text.txt", f"{work}/tokenizer.json"
HF = r'''
import os, sys, time
from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file(sys.argv[1])
data = open(sys.argv[2], "rb").read()
documents, current = [], b""
for line in data.splitlines(keepends=True):  # as bench_tokenizer.cpp cuts them
    current += line
    if len(current) >= 4096:
        documents.append(current.decode())
        current = b""
if current:
    documents.append(current.decode())
best = None
for _ in range(3):
    start = time.perf_counter()
    encodings = tokenizer.encode_batch(documents, add_special_tokens=False)
    seconds = time.perf_counter() - start
    best = seconds if best is None else min(best, seconds)
h = 14695981039346656037
for e in encodings:
    for i in e.ids + [0xFFFFFFFF]:
        h = ((h ^ i) * 1099511628211) % 2**64
print(len(data) / best / 1e6, sum(len(e.ids) for e in encodings), f"{h:016x}")
'''

def hf_encode(n):
    env = dict(os.environ, RAYON_NUM_THREADS=str(n), TOKENIZERS_PARALLELISM="true")
    out = subprocess.run([sys.executable, "-c", HF, tokenizer_path, text_path], env=env,
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1]), out[2]

def hf_train():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    start = time.perf_counter()
    tokenizer.train([text_path], trainer)
    return time.perf_counter() - start

summary = open(f"{work}/ours.txt").read().splitlines()[0]
print(summary)
ours_tokens, ours_checksum = summary.split(", ")[2].split()[0], summary.split()[-1]
ours = {int(b["threads"]): b["MB"] for b in json.load(open(f"{work}/ours.json"))["benchmarks"]}
print(f"{'':>24} {'MoEForge':>10} {'HF':>10} {'ratio':>7}")
for n in sorted(ours):
    mb_s, tokens, checksum = hf_encode(n)
    same = tokens == int(ours_tokens) and checksum == ours_checksum
    print(f"{f'encode MB/s, {n} thread(s)':>24} {ours[n]:10.2f} {mb_s:10.2f} {ours[n] / mb_s:7.2f}"
          f"   ids {'identical' if same else 'DIFFER'} ({tokens} tokens)")
    if not same:
        sys.exit(f"HF gives {tokens} tokens, checksum {checksum}; MoEForge {ours_tokens}, "
                 f"{ours_checksum}")
hf_s = hf_train()
print(f"{f'train s, vocab {vocab}':>24} {train_s:10.2f} {hf_s:10.2f} {train_s / hf_s:7.2f}"
      f"   (MoEForge: one thread; HF: rayon, {os.cpu_count()} cores)")
PY
