#!/usr/bin/env python3
"""The figures of docs/results/load-balancing.md from moe-eval's outputs of several runs.

    python3 bench/plot_load_balancing.py OUT.png NAME=EVAL_JSON:LOADS_JSON ...

EVAL_JSON is `moe-eval --json`'s output (the loss per validation set), LOADS_JSON the file of
`moe-eval --expert-loads` (docs/training.md). Prints a markdown table (each run's loss per
validation set, and per MoE layer the mutual information between domain and expert) and writes
OUT.png: one row of heatmaps per run, one per layer, domain x expert, colour = the share of the
domain's assignments that went to the expert times the number of experts (1 = spread evenly).

The specialisation score counts top-k assignments: each of a token's k choices is one draw of
(domain, expert), weighted as the counts are, so a domain with more scored tokens weighs more.
MI(domain; expert) is in bits; divided by H(domain) it is 0 when every domain spreads over the
experts alike and 1 when the expert tells the domain. Needs matplotlib for the PNG only.
"""

import json
import math
import sys

EVEN_MAX = 3  # the heatmaps' colour scale: 0 to 3 times an even share


def mutual_information(counts):
    """MI in bits between the row and the column of a joint count table (a list of rows)."""
    total = sum(map(sum, counts))
    rows = [sum(row) / total for row in counts]
    cols = [sum(col) / total for col in zip(*counts)]
    mi = 0.0
    for r, row in enumerate(counts):
        for c, n in enumerate(row):
            if n:
                p = n / total
                mi += p * math.log2(p / (rows[r] * cols[c]))
    return mi


def entropy(counts):
    """Entropy in bits of the distribution given by the counts."""
    total = sum(counts)
    return -sum(n / total * math.log2(n / total) for n in counts if n)


def layer_tables(loads):
    """{layer: (domain names, domain x expert counts)} of an --expert-loads file's contents."""
    tables = {}
    for s in loads["sets"]:
        for layer in s["layers"]:
            names, rows = tables.setdefault(layer["layer"], ([], []))
            names.append(s["name"])
            rows.append(layer["counts"])
    return tables


def specialisation(loads):
    """{layer: (MI in bits, MI / H(domain))}."""
    scores = {}
    for layer, (_, rows) in layer_tables(loads).items():
        mi = mutual_information(rows)
        scores[layer] = (mi, mi / entropy([sum(row) for row in rows]))
    return scores


def markdown(runs):
    """The loss and specialisation tables of runs [(name, eval, loads)]."""
    sets = list(runs[0][1]["val_loss"])
    lines = ["| run | " + " | ".join(sets) + " | mean |", "|---" * (len(sets) + 2) + "|"]
    for name, ev, _ in runs:
        losses = [f"{ev['val_loss'][s]:.4f}" for s in sets]
        lines.append(f"| {name} | " + " | ".join(losses) + f" | {ev['mean']:.4f} |")
    layers = sorted(specialisation(runs[0][2]))
    lines += ["", "| run | " + " | ".join(f"layer {l}" for l in layers) + " | mean |",
              "|---" * (len(layers) + 2) + "|"]
    for name, _, loads in runs:
        scores = specialisation(loads)
        cells = [f"{scores[l][0]:.3f} ({scores[l][1]:.2f})" for l in layers]
        mean = sum(scores[l][0] for l in layers) / len(layers)
        mean_norm = sum(scores[l][1] for l in layers) / len(layers)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean:.3f} ({mean_norm:.2f}) |")
    return "\n".join(lines)


def plot(runs, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted(layer_tables(runs[0][2]))
    fig, axes = plt.subplots(len(runs), len(layers), squeeze=False, constrained_layout=True,
                             figsize=(2.4 * len(layers) + 1.2, 1.5 * len(runs) + 0.6))
    for r, (name, _, loads) in enumerate(runs):
        tables = layer_tables(loads)
        scores = specialisation(loads)
        for c, layer in enumerate(layers):
            names, rows = tables[layer]
            experts = len(rows[0])
            ratio = [[n * experts / sum(row) for n in row] for row in rows]
            ax = axes[r][c]
            image = ax.imshow(ratio, vmin=0, vmax=EVEN_MAX, cmap="viridis", aspect="auto")
            ax.set_title(f"layer {layer}: MI {scores[layer][0]:.3f} bits", fontsize=8)
            ax.set_yticks(range(len(names)), [n.removesuffix("_val") for n in names], fontsize=7)
            ax.set_xticks(range(experts), range(experts), fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == len(runs) - 1:
                ax.set_xlabel("expert", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8,
                 label="domain's share on the expert x E\n(1 = even, 0 = unused)")
    fig.savefig(out, dpi=110)


def main(argv):
    if len(argv) < 2 or any("=" not in a or ":" not in a for a in argv[1:]):
        sys.exit("usage: plot_load_balancing.py OUT.png NAME=EVAL_JSON:LOADS_JSON ...")
    runs = []
    for spec in argv[1:]:
        name, paths = spec.split("=", 1)
        eval_path, loads_path = paths.split(":", 1)
        with open(eval_path, encoding="utf-8") as f, open(loads_path, encoding="utf-8") as g:
            runs.append((name, json.load(f), json.load(g)))
    print(markdown(runs))
    plot(runs, argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
