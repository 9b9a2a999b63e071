#!/usr/bin/env bash
# MoEForge against the PyTorch reference (bench/reference/moe_reference.py) on the same model, batch,
# sequence length, corpus and thread count, one after the other in one run: Debian's PyTorch 1.13
# and, when TORCH2_PYTHON names a Python with PyTorch 2.x (fused SDPA on the CPU), that one too.
# Prints the JSON lines, the ratios, and MoEForge's time per op over its timed steps.
#   bench/e2e_cpu.sh            # configs/quickstart.yaml, all cores, 3 warmup + 20 timed steps
#   CONFIG=configs/cpu-moe-100m.yaml TORCH2_PYTHON=/opt/torch2-venv/bin/python bench/e2e_cpu.sh
# Environment: CONFIG, THREADS, WARMUP, STEPS, MOE_BUILD_DIR (default build), TORCH2_PYTHON. Needs
# an idle machine: all sides use OpenMP threads, which slow down badly when other work shares the
# cores. A PyTorch 2.x venv from PyPI: bench/reference/README.md.
set -euo pipefail
MOE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$MOE_ROOT"
CONFIG="${CONFIG:-configs/quickstart.yaml}"
THREADS="${THREADS:-$(nproc)}"
WARMUP="${WARMUP:-3}"
STEPS="${STEPS:-20}"
BUILD="${MOE_BUILD_DIR:-build}"

bash launch/prepare_corpora.sh
profile="$(mktemp)"
moeforge="$(OMP_NUM_THREADS="$THREADS" "$BUILD/bench/bench_train_step" --config "$CONFIG" \
  --warmup "$WARMUP" --steps "$STEPS" --profile 2> "$profile")"
reference() {
  "$1" bench/reference/moe_reference.py --config "$CONFIG" --threads "$THREADS" --warmup "$WARMUP" \
    --steps "$STEPS"
}
results=("$moeforge" "$(reference /usr/bin/python3)")
if [ -n "${TORCH2_PYTHON:-}" ]; then
  results+=("$(reference "$TORCH2_PYTHON")")
else
  echo "note: TORCH2_PYTHON unset: PyTorch 2.x skipped" >&2
fi
printf '%s\n' "${results[@]}"
/usr/bin/python3 - "${results[@]}" <<'PY'
import json, sys
ours, *refs = [json.loads(a) for a in sys.argv[1:]]
names = [f"PyTorch {r['torch'].split('+')[0]}" for r in refs]
print(f"{'':>16} {'MoEForge':>12}" + "".join(f" {n:>14} {'ratio':>6}" for n in names))
for key in ("tokens_per_s", "step_ms_median", "peak_rss_mb", "loss_first", "loss_last"):
    loss = key.startswith("loss")
    cell = (lambda v: f"{v:.4f}") if loss else (lambda v: f"{v:.1f}")
    row = f"{key:>16} {cell(ours[key]):>12}"
    for r in refs:
        row += f" {cell(r[key]):>14} {'' if loss else f'{ours[key] / r[key]:.2f}':>6}"
    print(row)
print("ratio: MoEForge / that PyTorch")
PY
cat "$profile"
rm -f "$profile"
