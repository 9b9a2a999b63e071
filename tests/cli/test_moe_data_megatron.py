#!/usr/bin/env python3
"""moe-data against Megatron-LM's .bin/.idx layout, with numpy as the independent implementation.

  test_moe_data_megatron.py <moe-data>

1. Datasets written here the way Megatron-LM's IndexedDatasetBuilder writes them (the few lines
   of its _IndexWriter, redone from the documented layout; several sequences per document, every
   integer dtype) are read by `moe-data inspect`: counts, dtype and every decoded sequence match.
2. What `moe-data prepare` writes (plain text and JSON Lines encoded by Python's json module,
   escapes and surrogate pairs included) is parsed back with numpy per that layout: header, exact
   file sizes, lengths, contiguous pointers, document indices and tokens = UTF-8 bytes + EOD.
Needs numpy (Debian: python3-numpy, under /usr/bin/python3).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy

HEADER = b"MMIDIDX\x00\x00"
CODES = {numpy.uint8: 1, numpy.int8: 2, numpy.int16: 3, numpy.int32: 4, numpy.int64: 5,
         numpy.float64: 6, numpy.float32: 7, numpy.uint16: 8}
DTYPES = {code: dtype for dtype, code in CODES.items()}
EOD = 256
failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAIL:", what)


def write_megatron(prefix, dtype, documents):
    """documents: lists of sequences, each a list of token ids (Megatron's builder + index writer)."""
    lengths, document_indices = [], [0]
    with open(prefix + ".bin", "wb") as data:
        for document in documents:
            for sequence in document:
                data.write(numpy.array(sequence, dtype=dtype).tobytes(order="C"))
                lengths.append(len(sequence))
            document_indices.append(len(lengths))
    itemsize = numpy.dtype(dtype).itemsize
    pointers = numpy.concatenate([[0], numpy.cumsum(lengths)[:-1]]).astype(numpy.int64) * itemsize
    with open(prefix + ".idx", "wb") as index:
        index.write(HEADER)
        index.write(struct.pack("<Q", 1))
        index.write(struct.pack("<B", CODES[dtype]))
        index.write(struct.pack("<Q", len(lengths)))
        index.write(struct.pack("<Q", len(document_indices)))
        index.write(numpy.array(lengths, dtype=numpy.int32).tobytes(order="C"))
        index.write(pointers.tobytes(order="C"))
        index.write(numpy.array(document_indices, dtype=numpy.int64).tobytes(order="C"))


def read_megatron(prefix):
    """Megatron's _IndexReader + _MMapBinReader: (dtype, lengths, pointers, documents, sequences)."""
    with open(prefix + ".idx", "rb") as index:
        check(index.read(9) == HEADER, "header of " + prefix)
        version, code, count, document_count = struct.unpack("<QBQQ", index.read(25))
    check(version == 1, "version of " + prefix)
    dtype = DTYPES[code]
    buffer = numpy.memmap(prefix + ".idx", mode="r", order="C")
    lengths = numpy.frombuffer(buffer, dtype=numpy.int32, count=count, offset=34)
    pointers = numpy.frombuffer(buffer, dtype=numpy.int64, count=count, offset=34 + 4 * count)
    documents = numpy.frombuffer(buffer, dtype=numpy.int64, count=document_count,
                                 offset=34 + 12 * count)
    check(os.path.getsize(prefix + ".idx") == 34 + 12 * count + 8 * document_count,
          "size of " + prefix + ".idx")
    data = numpy.memmap(prefix + ".bin", mode="r", order="C")
    sequences = [numpy.frombuffer(data, dtype=dtype, count=int(n), offset=int(p)).tolist()
                 for n, p in zip(lengths, pointers)]
    return dtype, lengths.tolist(), pointers.tolist(), documents.tolist(), sequences


def run(*args):
    result = subprocess.run(args, capture_output=True, text=True, errors="replace")
    check(result.returncode == 0, " ".join(args) + " failed: " + result.stderr)
    return result.stdout


def decoded(sequence):
    text = bytes(t for t in sequence if t < 256).decode("utf-8")
    return text + ("<|endoftext|>" if sequence and sequence[-1] == EOD else "")


def megatron_to_moe_data(moe_data, directory):
    texts = [["In the beginning ", "God created the heaven"], ["and the earth."],
             ["Caf\u00e9 na\u00efve \u2014 ", "\U0001F600 ", "end"]]
    for dtype in (numpy.uint16, numpy.int32, numpy.int64, numpy.int16, numpy.uint8):
        name = numpy.dtype(dtype).name
        documents = []
        for document in texts:
            sequences = [list(text.encode("utf-8")) for text in document]
            if dtype != numpy.uint8:  # EOD = 256 does not fit u8
                sequences[-1].append(EOD)
            documents.append(sequences)
        prefix = os.path.join(directory, "megatron_" + name)
        write_megatron(prefix, dtype, documents)
        output = run(moe_data, "inspect", prefix, "--samples", "100", "--sample-tokens", "1000",
                     *(["--check-vocab"] if dtype != numpy.uint8 else []))
        flat = [s for d in documents for s in d]
        tokens = sum(len(s) for s in flat)
        for line in ("sequences  %d" % len(flat), "documents  %d" % len(documents),
                     "tokens     %d" % tokens,
                     "dtype      %s (Megatron code %d)" % (
                         {"uint16": "u16", "int32": "i32", "int64": "i64", "int16": "i16",
                          "uint8": "u8"}[name], CODES[dtype])):
            check(line in output, "%s: no '%s' in inspect output:\n%s" % (name, line, output))
        blocks = output.split("--- sample ")[1:]
        check(len(blocks) == len(flat), "%s: %d samples shown, expected %d" % (
            name, len(blocks), len(flat)))
        first_of = [d for d, document in enumerate(documents) for _ in document]
        for s, (block, sequence) in enumerate(zip(blocks, flat)):
            header, _, body = block.partition("\n")
            check("sequence %d (document %d), %d tokens" % (s, first_of[s], len(sequence)) in header,
                  "%s: sample header '%s'" % (name, header))
            check(body == decoded(sequence) + "\n", "%s: sequence %d decodes to %r, expected %r" % (
                name, s, body, decoded(sequence)))


def moe_data_to_megatron(moe_data, directory):
    plain = "One document\nof two lines.\n"
    records = ["Caf\u00e9 \"quoted\"\tand\\slashes", "\U0001F600 surrogate pair", "line\nbreak"]
    with open(os.path.join(directory, "a.txt"), "w", encoding="utf-8") as out:
        out.write(plain)
    with open(os.path.join(directory, "b.jsonl"), "w", encoding="utf-8") as out:
        for i, text in enumerate(records):
            out.write(json.dumps({"id": i, "text": text}) + "\n")  # ASCII with \\u escapes
    prefix = os.path.join(directory, "ours")
    run(moe_data, "prepare", "--input", os.path.join(directory, "a.txt"), "--input",
        os.path.join(directory, "b.jsonl"), "--tokenizer", "byte", "--output", prefix)
    dtype, lengths, pointers, documents, sequences = read_megatron(prefix)
    expected = [list(text.encode("utf-8")) + [EOD] for text in [plain] + records]
    check(dtype == numpy.uint16, "dtype %s, expected uint16 for the 257-id byte vocabulary" % dtype)
    check(sequences == expected, "tokens %r, expected %r" % (sequences, expected))
    check(lengths == [len(e) for e in expected], "lengths %r" % lengths)
    check(pointers == [2 * sum(lengths[:i]) for i in range(len(lengths))], "pointers %r" % pointers)
    check(documents == list(range(len(expected) + 1)), "document indices %r" % documents)
    check(os.path.getsize(prefix + ".bin") == 2 * sum(lengths), "size of ours.bin")


def main():
    moe_data = sys.argv[1]
    with tempfile.TemporaryDirectory() as directory:
        megatron_to_moe_data(moe_data, directory)
        moe_data_to_megatron(moe_data, directory)
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("ok: Megatron-layout datasets read by moe-data, and moe-data's parsed with numpy")


if __name__ == "__main__":
    main()
