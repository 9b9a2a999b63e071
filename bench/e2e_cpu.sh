#!/usr/bin/env bash
# MoEForge against the PyTorch reference (bench/reference/moe_reference.py) on the same model, batch,
# sequence length, corpus and thread count, one after the other in one run; prints both JSON lines,
# the ratio, and MoEForge's time per op over its timed steps.
#   bench/e2e_cpu.sh            # configs/quickstart.yaml, all cores, 3 warmup + 20 timed steps
# Environment: CONFIG, THREADS, WARMUP, STEPS, MOE_BUILD_DIR (default build). Needs an idle machine:
# both sides use OpenMP threads, which slow down badly when other work shares the cores.
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
reference="$(/usr/bin/python3 bench/reference/moe_reference.py --config "$CONFIG" \
  --threads "$THREADS" --warmup "$WARMUP" --steps "$STEPS")"
echo "$moeforge"
echo "$reference"
/usr/bin/python3 - "$moeforge" "$reference" <<'PY'
import json, sys
ours, ref = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'':>22} {'MoEForge':>12} {'PyTorch':>12} {'ratio':>8}")
for key in ("tokens_per_s", "step_ms_median", "peak_rss_mb", "loss_first", "loss_last"):
    a, b = ours[key], ref[key]
    print(f"{key:>22} {a:12.1f} {b:12.1f} {a / b:8.2f}" if key != "loss_first" and key != "loss_last"
          else f"{key:>22} {a:12.4f} {b:12.4f}")
PY
cat "$profile"
rm -f "$profile"
