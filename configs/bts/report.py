#!/usr/bin/env python3
"""Table and plot of the BTS replication (configs/bts/replicate.sh).

    python3 report.py RUNS_DIR OUT.png
Reads RUNS_DIR/eval_<model>.json (moe-eval --json) for the seed, the three experts, BTX and BTS,
prints a Markdown table of the validation loss per domain and its mean, and draws it as grouped
bars; then prints the validation curves of the BTX and BTS training runs (RUNS_DIR/*.jsonl).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MODELS = [("seed", "seed"), ("bible", "bible expert"), ("austen", "austen expert"),
          ("code", "code expert"), ("btx", "BTX MoE"), ("stitch", "BTS")]
DOMAINS = ["bible_val", "austen_val", "code_val"]


def curve(path):
    points = {}
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if "val_loss" in record and "step" in record:
                points[record["step"]] = record["val_loss"]
    return points


def main():
    runs, out = sys.argv[1], sys.argv[2]
    losses = {}
    for key, _ in MODELS:
        with open(os.path.join(runs, f"eval_{key}.json")) as f:
            losses[key] = json.load(f)["val_loss"]
    print("| model | " + " | ".join(d.removesuffix("_val") for d in DOMAINS) + " | mean |")
    print("|---|" + "---:|" * (len(DOMAINS) + 1))
    for key, label in MODELS:
        values = [losses[key][d] for d in DOMAINS]
        cells = " | ".join(f"{v:.4f}" for v in values + [sum(values) / len(values)])
        print(f"| {label} | {cells} |")

    plt.figure(figsize=(8, 4.5))
    width = 0.8 / len(MODELS)
    groups = DOMAINS + ["mean"]
    for i, (key, label) in enumerate(MODELS):
        values = [losses[key][d] for d in DOMAINS]
        values.append(sum(values) / len(values))
        plt.bar([g + (i - (len(MODELS) - 1) / 2) * width for g in range(len(groups))], values,
                width, label=label)
    plt.xticks(range(len(groups)), [g.removesuffix("_val") for g in groups])
    plt.ylabel("validation loss (nats per byte)")
    plt.ylim(1.0, None)
    plt.title("Seed, domain experts, BTX and BTS on each domain")
    plt.legend(ncol=3, fontsize=8)
    plt.grid(axis="y", alpha=0.3)
    plt.tight_layout()
    plt.savefig(out, dpi=120)

    btx, bts = curve(os.path.join(runs, "btx.jsonl")), curve(os.path.join(runs, "stitch.jsonl"))
    print("\n| step | BTX | BTS |\n|---:|---:|---:|")
    for step in sorted(set(btx) | set(bts)):
        print(f"| {step} | {btx.get(step, float('nan')):.4f} | {bts.get(step, float('nan')):.4f} |")


if __name__ == "__main__":
    main()
