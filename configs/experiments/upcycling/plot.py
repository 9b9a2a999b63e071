#!/usr/bin/env python3
"""Validation-loss curves of the upcycling runs on one plot (configs/experiments/upcycling/run.sh).

    python3 plot.py RUNS_DIR OUT.png
Reads RUNS_DIR/{scratch,copy,drop,noise}.jsonl (MoEForge metrics files) and, as a reference line,
the dense model's last validation loss from RUNS_DIR/dense.jsonl; prints the curves as a table.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def val_curve(path):
    steps, losses = [], []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if "val_loss" in record and "step" in record:
                steps.append(record["step"])
                losses.append(record["val_loss"])
    return steps, losses


def main():
    runs, out = sys.argv[1], sys.argv[2]
    _, dense = val_curve(os.path.join(runs, "dense.jsonl"))
    plt.figure(figsize=(7, 4.5))
    table = {}
    for name in ("scratch", "copy", "drop", "noise"):
        steps, losses = val_curve(os.path.join(runs, name + ".jsonl"))
        table[name] = dict(zip(steps, losses))
        plt.plot(steps, losses, marker=".", label={"drop": "drop (r=0.5)"}.get(name, name))
    plt.axhline(dense[-1], color="gray", linestyle="--", label="dense model (end of its training)")
    plt.xlabel("MoE training step (1024 tokens each)")
    plt.ylabel("validation loss (mean of 3 sets)")
    plt.title("Upcycling a dense model into an 8-expert top-2 MoE")
    plt.legend()
    plt.grid(alpha=0.3)
    plt.tight_layout()
    plt.savefig(out, dpi=120)
    steps = sorted(table["scratch"])
    print("step " + " ".join(f"{n:>8}" for n in table))
    for s in steps:
        print(f"{s:4d} " + " ".join(f"{table[n].get(s, float('nan')):8.4f}" for n in table))
    print(f"dense model's final val_loss {dense[-1]:.4f}")


if __name__ == "__main__":
    main()
