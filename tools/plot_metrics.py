#!/usr/bin/env python3
"""Plots a MoEForge metrics file (JSONL, one record per line; trainer/metrics.h) into PNGs.

    python3 tools/plot_metrics.py metrics.jsonl --out plots/
    python3 tools/plot_metrics.py f32.jsonl bf16.jsonl --label f32 --label bf16 --out plots/

Writes, for what the file holds:
  loss.png         training `loss` and evaluation `val_loss` (and each `val_loss.<set>`) by `step`
  aux_losses.png   every other key ending in `_loss` (load-balancing, z-loss, ...), one panel each
  expert_load.png  per-layer heatmaps of `load.layer<N>` (a list of per-expert token counts):
                   x = step, y = expert, colour = the expert's load relative to a perfectly
                   balanced one (count / mean count; 1 = balanced, 0 = unused)

Given several files (runs to compare, named by --label, or else by their file names), it writes
only loss.png, with each run's training and validation loss in one colour.

Records without a `step` are ignored; null values (NaN or Inf in the run) leave gaps. A last line
cut short by a crash is skipped with a warning; any other malformed line is an error.
Needs matplotlib (Debian: python3-matplotlib); otherwise only the standard library.
"""

import argparse
import json
import math
import os
import re
import sys

LOAD_KEY = re.compile(r"^load\.layer(\d+)$")
MAIN_LOSSES = ("loss", "val_loss")


class MetricsError(Exception):
    pass


def read_records(path):
    """The records of a JSONL file, each as (line number, dict)."""
    if not os.path.exists(path):
        raise MetricsError(f"metrics file '{path}' does not exist")
    if os.path.isdir(path):
        raise MetricsError(f"metrics file '{path}' is a directory")
    with open(path, encoding="utf-8") as f:
        lines = [(n, line) for n, line in enumerate(f, start=1) if line.strip()]
    if not lines:
        raise MetricsError(f"metrics file '{path}' is empty")
    records = []
    for i, (n, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1 and not line.endswith("\n"):
                print(f"warning: {path}:{n}: skipping the last line, cut short: {e}",
                      file=sys.stderr)
                continue
            raise MetricsError(f"{path}:{n}: not valid JSON: {e}") from None
        if not isinstance(record, dict):
            raise MetricsError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
        records.append((n, record))
    return records


def as_float(value):
    return math.nan if value is None else float(value)


def series(records, key):
    """(steps, values) of every record that has both `step` and `key`."""
    steps, values = [], []
    for _, r in records:
        if "step" in r and key in r and not isinstance(r[key], (list, str)):
            steps.append(r["step"])
            values.append(as_float(r[key]))
    return steps, values


def aux_loss_keys(records):
    keys = []
    for _, r in records:
        for key in r:
            if key.endswith("_loss") and key not in MAIN_LOSSES and key not in keys:
                keys.append(key)
    return keys


def load_matrices(records, path):
    """{layer: (steps, rows)} where rows[i] is the per-expert load of steps[i]."""
    layers = {}
    for n, r in records:
        if "step" not in r:
            continue
        for key, value in r.items():
            match = LOAD_KEY.match(key)
            if not match:
                continue
            if not isinstance(value, list) or not value:
                raise MetricsError(f"{path}:{n}: '{key}' should be a non-empty list of "
                                   f"per-expert token counts, got {value!r}")
            steps, rows = layers.setdefault(int(match.group(1)), ([], []))
            if rows and len(value) != len(rows[0]):
                raise MetricsError(f"{path}:{n}: '{key}' has {len(value)} experts, earlier "
                                   f"records have {len(rows[0])}")
            steps.append(r["step"])
            rows.append([as_float(v) for v in value])
    return dict(sorted(layers.items()))


def relative_load(row):
    mean = sum(row) / len(row)
    if not math.isfinite(mean) or mean <= 0:
        return [math.nan] * len(row)
    return [v / mean for v in row]


def cell_edges(steps):
    """Boundaries between steps for pcolormesh, so uneven logging intervals still line up."""
    if len(steps) == 1:
        return [steps[0] - 0.5, steps[0] + 0.5]
    mids = [(a + b) / 2 for a, b in zip(steps, steps[1:])]
    return [steps[0] - (mids[0] - steps[0])] + mids + [steps[-1] + (steps[-1] - mids[-1])]


def validation_set_keys(records):
    """The per-set validation losses, "val_loss.<set>", in order of first appearance."""
    keys = []
    for _, r in records:
        for key in r:
            if key.startswith("val_loss.") and key not in keys:
                keys.append(key)
    return keys


def plot_losses(plt, records, out_dir):
    fig, ax = plt.subplots(figsize=(8, 5))
    curves = [("loss", "train loss"), ("val_loss", "validation loss")]
    curves += [(key, "validation: " + key[len("val_loss."):]) for key in validation_set_keys(records)]
    for key, label in curves:
        steps, values = series(records, key)
        if steps:
            ax.plot(steps, values, marker="o" if key.startswith("val_loss") else None,
                    markersize=3, linestyle="--" if key.startswith("val_loss.") else "-",
                    label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(plt, fig, out_dir, "loss.png")


def plot_compared_losses(plt, runs, out_dir):
    fig, ax = plt.subplots(figsize=(8, 5))
    for index, (label, records) in enumerate(runs):
        color = f"C{index}"
        steps, values = series(records, "loss")
        if steps:
            ax.plot(steps, values, color=color, label=f"{label}: train loss")
        steps, values = series(records, "val_loss")
        if steps:
            ax.plot(steps, values, color=color, marker="o", markersize=4, linestyle="--",
                    label=f"{label}: validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss, " + " vs ".join(label for label, _ in runs))
    ax.grid(alpha=0.3)
    ax.legend()
    return save(plt, fig, out_dir, "loss.png")


def plot_aux_losses(plt, records, keys, out_dir):
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 2.6 * len(keys)), sharex=True,
                             squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        steps, values = series(records, key)
        ax.plot(steps, values)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle("auxiliary losses")
    return save(plt, fig, out_dir, "aux_losses.png")


def plot_expert_load(plt, layers, out_dir):
    fig, axes = plt.subplots(len(layers), 1, figsize=(9, 2.2 + 1.8 * len(layers)), sharex=True,
                             squeeze=False)
    grids = {layer: [relative_load(row) for row in rows] for layer, (_, rows) in layers.items()}
    finite = [v for grid in grids.values() for row in grid for v in row if math.isfinite(v)]
    vmax = max([2.0] + finite)
    mesh = None
    for ax, (layer, (steps, _)) in zip(axes[:, 0], layers.items()):
        order = sorted(range(len(steps)), key=lambda i: steps[i])
        ordered_steps = [steps[i] for i in order]
        experts = len(grids[layer][0])
        # rows of the image are experts, columns are steps
        image = [[grids[layer][i][e] for i in order] for e in range(experts)]
        mesh = ax.pcolormesh(cell_edges(ordered_steps), [e - 0.5 for e in range(experts + 1)],
                             image, cmap="viridis", vmin=0.0, vmax=vmax, shading="flat")
        ax.set_ylabel(f"layer {layer}\nexpert")
        if experts <= 16:
            ax.set_yticks(range(experts))
    axes[-1, 0].set_xlabel("step")
    fig.colorbar(mesh, ax=axes[:, 0].tolist(), label="load / balanced load")
    fig.suptitle("expert load per layer")
    return save(plt, fig, out_dir, "expert_load.png")


def save(plt, fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pyplot_for(out_dir):
    """matplotlib.pyplot (Agg), once the output directory exists."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise MetricsError(f"cannot create output directory '{out_dir}': {e}") from None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MetricsError(f"{sys.executable} has no matplotlib "
                           f"(Debian: apt-get install python3-matplotlib)") from None
    return plt


def compare(args):
    labels = args.label or [os.path.basename(path) for path in args.metrics]
    runs = [(label, read_records(path)) for label, path in zip(labels, args.metrics)]
    for (label, records), path in zip(runs, args.metrics):
        if not any(series(records, key)[0] for key in MAIN_LOSSES):
            raise MetricsError(f"metrics file '{path}' has no records with 'step' and 'loss' or "
                               f"'val_loss' to compare")
    print(plot_compared_losses(pyplot_for(args.out), runs, args.out))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", nargs="+",
                        help="metrics JSONL file written by a run (log.metrics_file); several to "
                             "compare their losses")
    parser.add_argument("--label", action="append", default=[],
                        help="name of a run when comparing, once per file, in order")
    parser.add_argument("--out", default="plots", help="directory for the PNGs (default: plots)")
    args = parser.parse_args(argv)
    try:
        if args.label and len(args.label) != len(args.metrics):
            raise MetricsError(f"{len(args.label)} --label for {len(args.metrics)} metrics files: "
                               f"give one per file, or none")
        if len(args.metrics) > 1:
            return compare(args)
        records = read_records(args.metrics[0])
        aux_keys = aux_loss_keys(records)
        layers = load_matrices(records, args.metrics[0])
        has_loss = any(series(records, key)[0] for key in MAIN_LOSSES)
        if not (has_loss or aux_keys or layers):
            raise MetricsError(f"metrics file '{args.metrics[0]}' has no records with 'step' and "
                               f"'loss', 'val_loss', '*_loss' or 'load.layer<N>' to plot")
        plt = pyplot_for(args.out)
        written = []
        if has_loss:
            written.append(plot_losses(plt, records, args.out))
        if aux_keys:
            written.append(plot_aux_losses(plt, records, aux_keys, args.out))
        if layers:
            written.append(plot_expert_load(plt, layers, args.out))
    except MetricsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
