#!/usr/bin/env python3
"""Writes the fuzzer's seed .idx files into corpus_idx/ (Megatron-LM's layout, see docs/data.md).

Every seed fits the fuzz target's 1 KiB .bin. Run it again only to change the seeds; the files it
writes are committed. Standard library only.
"""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_idx")
SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 8, 7: 4, 8: 2}


def index(code, lengths, documents, magic=b"MMIDIDX\x00\x00", version=1):
    pointers, at = [], 0
    for length in lengths:
        pointers.append(at)
        at += length * SIZES[code]
    return (magic + struct.pack("<QBQQ", version, code, len(lengths), len(documents)) +
            struct.pack(f"<{len(lengths)}i", *lengths) + struct.pack(f"<{len(lengths)}q", *pointers) +
            struct.pack(f"<{len(documents)}q", *documents))


SEEDS = {
    "u16_three_documents.idx": index(8, [3, 0, 2], [0, 1, 2, 3]),
    "u8_whole_bin.idx": index(1, [1024], [0, 1]),
    "i32_two_sequences_per_document.idx": index(4, [2, 3, 1, 2], [0, 2, 4]),
    "i64_one_sequence.idx": index(5, [16], [0, 1]),
    "f32_values.idx": index(7, [4, 4], [0, 1, 2]),
    "f64_values.idx": index(6, [2], [0, 1]),
    "i8_and_i16.idx": index(2, [5, 7], [0, 1, 2]),
    "empty_dataset.idx": index(8, [], [0]),
    "bad_magic.idx": index(8, [1], [0, 1], magic=b"MMIDIDX\x00\x01"),
}

if __name__ == "__main__":
    os.makedirs(HERE, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(HERE, name), "wb") as out:
            out.write(data)
