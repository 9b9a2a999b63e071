#!/usr/bin/env python3
"""Tests of tools/plot_metrics.py: the PNGs it writes for a small generated metrics file, which
ones it skips, the numbers behind the load heatmap, and its errors. Run by ctest (plot_metrics)
with a python3 that has matplotlib."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "plot_metrics.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

spec = importlib.util.spec_from_file_location("plot_metrics", SCRIPT)
plot_metrics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_metrics)


def write_lines(path, lines, final_newline=True):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + ("\n" if final_newline else ""))


def run_metrics(records):
    """Lines as MetricsWriter writes them: a start record, training steps, evaluations."""
    lines = [json.dumps({"event": "start", "config": "run.yaml"})]
    for step in range(records):
        loads = {f"load.layer{layer}": [10 + step, 10, 10 - step // 2, step % 3]
                 for layer in (0, 2)}
        record = {"step": step, "loss": 5.0 - 0.1 * step, "lr": 1e-3, "aux_loss": 1.0 + 0.01 * step,
                  "z_loss": None if step == 3 else 0.5, **loads}
        lines.append(json.dumps(record))
        if step % 5 == 4:
            lines.append(json.dumps({"step": step, "val_loss.bible": 5.0 - 0.1 * step,
                                     "val_loss.code": 5.2 - 0.1 * step,
                                     "val_loss": 5.1 - 0.1 * step}))
    return lines


class PlotMetrics(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.env = dict(os.environ, MPLCONFIGDIR=os.path.join(self.dir, "mplconfig"),
                        MPLBACKEND="Agg")

    def tearDown(self):
        self.tmp.cleanup()

    def run_script(self, *args):
        return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                              env=self.env, timeout=300)

    def assert_png(self, path):
        self.assertTrue(os.path.isfile(path), f"{path} was not written")
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), PNG_SIGNATURE, f"{path} is not a PNG")
        self.assertGreater(os.path.getsize(path), 5000, f"{path} is suspiciously small")

    def test_writes_every_plot(self):
        metrics = os.path.join(self.dir, "metrics.jsonl")
        write_lines(metrics, run_metrics(20))
        out = os.path.join(self.dir, "plots", "nested")
        result = self.run_script(metrics, "--out", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        names = ["loss.png", "aux_losses.png", "expert_load.png"]
        for name in names:
            self.assert_png(os.path.join(out, name))
        self.assertEqual(result.stdout.split(), [os.path.join(out, n) for n in names])

    def test_only_what_the_file_holds(self):
        metrics = os.path.join(self.dir, "metrics.jsonl")
        write_lines(metrics, [json.dumps({"step": s, "loss": 3.0 / (s + 1)}) for s in range(5)])
        out = os.path.join(self.dir, "plots")
        result = self.run_script(metrics, "--out", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["loss.png"])

    def test_several_runs_compare_their_losses(self):
        f32, bf16 = os.path.join(self.dir, "f32.jsonl"), os.path.join(self.dir, "bf16.jsonl")
        write_lines(f32, run_metrics(10))
        write_lines(bf16, run_metrics(8))
        out = os.path.join(self.dir, "compare")
        result = self.run_script(f32, bf16, "--label", "f32", "--label", "bf16", "--out", out)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["loss.png"])
        self.assert_png(os.path.join(out, "loss.png"))

        result = self.run_script(f32, bf16, "--label", "f32", "--out", out)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("1 --label for 2 metrics files", result.stderr)

        nothing = os.path.join(self.dir, "nothing.jsonl")
        write_lines(nothing, [json.dumps({"step": 0, "aux_loss": 1.0})])
        result = self.run_script(f32, nothing, "--out", out)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"metrics file '{nothing}' has no records with 'step' and 'loss'",
                      result.stderr)

    def test_a_last_line_cut_short_is_skipped(self):
        metrics = os.path.join(self.dir, "metrics.jsonl")
        lines = run_metrics(6) + ['{"step": 6, "loss": 4.']
        write_lines(metrics, lines, final_newline=False)
        result = self.run_script(metrics, "--out", os.path.join(self.dir, "plots"))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"{metrics}:{len(lines)}: skipping the last line", result.stderr)

    def test_errors_name_the_file(self):
        missing = os.path.join(self.dir, "missing.jsonl")
        result = self.run_script(missing)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"error: metrics file '{missing}' does not exist", result.stderr)

        empty = os.path.join(self.dir, "empty.jsonl")
        write_lines(empty, [""])
        result = self.run_script(empty)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"error: metrics file '{empty}' is empty", result.stderr)

        bad = os.path.join(self.dir, "bad.jsonl")
        write_lines(bad, ['{"step": 0, "loss": 1.0}', "{not json", '{"step": 1, "loss": 0.9}'])
        result = self.run_script(bad)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"error: {bad}:2: not valid JSON", result.stderr)

        nothing = os.path.join(self.dir, "nothing.jsonl")
        write_lines(nothing, [json.dumps({"event": "start"})])
        result = self.run_script(nothing)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("has no records with 'step'", result.stderr)

        ragged = os.path.join(self.dir, "ragged.jsonl")
        write_lines(ragged, [json.dumps({"step": 0, "load.layer1": [1, 2, 3]}),
                             json.dumps({"step": 1, "load.layer1": [1, 2]})])
        result = self.run_script(ragged)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"{ragged}:2: 'load.layer1' has 2 experts, earlier records have 3",
                      result.stderr)

    def test_heatmap_numbers(self):
        self.assertEqual(plot_metrics.relative_load([2, 2, 4, 0]), [1.0, 1.0, 2.0, 0.0])
        self.assertTrue(all(v != v for v in plot_metrics.relative_load([0, 0])))  # all NaN
        self.assertEqual(plot_metrics.cell_edges([10]), [9.5, 10.5])
        self.assertEqual(plot_metrics.cell_edges([0, 10, 30]), [-5.0, 5.0, 20.0, 40.0])
        records = [(1, {"step": 0, "load.layer3": [1, 3], "load.layer0": [2, 2]}),
                   (2, {"step": 5, "load.layer3": [0, 4], "load.layer0": [4, 0]}),
                   (3, {"load.layer3": [9, 9]})]  # no step: ignored
        layers = plot_metrics.load_matrices(records, "m.jsonl")
        self.assertEqual(list(layers), [0, 3])
        self.assertEqual(layers[3], ([0, 5], [[1.0, 3.0], [0.0, 4.0]]))
        self.assertEqual(plot_metrics.aux_loss_keys(
            [(1, {"loss": 1, "val_loss": 1, "aux_loss": 0, "z_loss": 0, "lr": 1})]),
            ["aux_loss", "z_loss"])
        self.assertEqual(plot_metrics.validation_set_keys(
            [(1, {"step": 1, "val_loss.b": 1, "val_loss": 1}), (2, {"val_loss.a": 2})]),
            ["val_loss.b", "val_loss.a"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
