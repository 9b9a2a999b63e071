#!/usr/bin/env python3
"""Predicted speedup of FSSDP over expert parallelism against routing skew (the cost model).

    python3 plot_fssdp_sweep.py OUT.png SWEEP.txt [SWEEP.txt ...]
Each SWEEP.txt is the output of build/bench/fssdp_cost_sweep; the curve is labelled with the
FSSDP slots its header line names.
"""
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    slots, skews, speedups, ep, fssdp = None, [], [], [], []
    with open(path) as f:
        for line in f:
            match = re.search(r"FSSDP slots (\d+)", line)
            if match:
                slots = int(match.group(1))
            cells = [c.split() for c in line.split("|")]
            if len(cells) == 4 and re.match(r"^\d", line.strip()):
                skews.append(float(cells[0][0]))
                ep.append(float(cells[1][3]))
                fssdp.append(float(cells[2][4]))
                speedups.append(float(cells[3][0]))
    return slots, skews, speedups, ep, fssdp


def main():
    out, paths = sys.argv[1], sys.argv[2:]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for path in paths:
        slots, skews, speedups, ep, fssdp = read(path)
        left.plot(skews, speedups, marker="o", label=f"FSSDP, {slots} slot(s) per rank")
        right.plot(skews, fssdp, marker="o", label=f"FSSDP, {slots} slot(s)")
    right.plot(skews, ep, marker="s", color="black", label="expert parallelism")
    left.axhline(1.0, color="gray", linestyle="--")
    left.set_xlabel("routing skew (Zipf exponent)")
    left.set_ylabel("predicted speedup over EP")
    left.set_title("MoE layer, 32 GPUs (8 per node)")
    left.legend()
    left.grid(alpha=0.3)
    right.set_xlabel("routing skew (Zipf exponent)")
    right.set_ylabel("ms per MoE layer and step")
    right.set_title("predicted expert work + traffic")
    right.legend()
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
