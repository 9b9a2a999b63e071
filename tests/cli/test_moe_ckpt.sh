#!/usr/bin/env bash
# moe-ckpt against real checkpoints from a short moe-train run: ls, verify and diff, the h5py
# example of docs/checkpoints.md, and the damage verify must report (no COMMIT, a flipped byte, a
# missing moment, a truncated file) with exit status 1, never a crash; a run directory or an unknown
# subcommand named as such.
#   test_moe_ckpt.sh <moe-ckpt> <moe-train> <repo root>
# h5py comes from Debian's python3-h5py, which a python3 first on PATH (pyenv, venv) may lack.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
moe_ckpt="$(realpath "$1")"
moe_train="$(realpath "$2")"
root="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

python=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c "import h5py, numpy" 2>/dev/null; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then
  echo "FAIL: no python3 with h5py and numpy (apt-get install python3-h5py)"; exit 1
fi

cd "$root" || exit 1  # the config names its datasets relative to the repository
if ! "$moe_train" --config configs/quickstart.yaml --set train.steps=4 --set train.warmup_steps=1 \
    --set model.n_layers=1 --set train.eval_batches=1 --set checkpoint.dir="$tmp/ck" \
    --set checkpoint.interval=2 --set log.metrics_file= >"$tmp/train.log" 2>&1; then
  echo "FAIL: the moe-train run that makes the checkpoints failed"; tail -5 "$tmp/train.log"; exit 1
fi
step2="$tmp/ck/step_00000002"
# expect_line <extended regex> <command...>: some line of the command's output matches the regex.
expect_line() {
  local pattern="$1"
  shift
  if "$@" 2>&1 | grep -Eq "$pattern"; then
    echo "ok: $* ~ $pattern"
  else
    echo "FAIL: no line matching '$pattern' in the output of: $*"; failures=$((failures + 1))
  fi
}
step4="$tmp/ck/step_00000004"

expect zero "step 4, 32 samples / 4096 tokens consumed" "$moe_ckpt" ls "$step4"
expect_line '^model/layers\.0\.moe\.experts\.w_up +\[8, 256, 128\] +f32 +1048576$' "$moe_ckpt" ls "$step4"
expect zero "total all: 36 tensors" "$moe_ckpt" ls "$step4"
expect zero "ok: 36 tensors verified" "$moe_ckpt" verify "$step4"
expect zero "ok: 36 tensors verified" "$moe_ckpt" verify "$step2"
expect zero "36 tensors in both, 0 of them differ" "$moe_ckpt" diff "$step4" "$step4"
expect zero "36 tensors in both, 36 of them differ" "$moe_ckpt" diff "$step2" "$step4"
# Training moved every parameter: each model/ line of the diff ends in a non-zero difference.
changed="$("$moe_ckpt" diff "$step2" "$step4" | awk '/^model\// && $NF + 0 > 0 { n++ } END { print n + 0 }')"
[ "$changed" -eq 12 ] || { echo "FAIL: $changed of 12 model tensors differ from step 2 to 4"; failures=$((failures + 1)); }

# The h5py example of docs/checkpoints.md is this file, and it reads the checkpoint.
if ! awk '/^```python$/ { on = 1; next } /^```$/ { on = 0 } on' "$root/docs/checkpoints.md" |
    diff -q - "$here/read_checkpoint_h5py.py" >/dev/null; then
  echo "FAIL: the Python example of docs/checkpoints.md differs from read_checkpoint_h5py.py"
  failures=$((failures + 1))
fi
expect zero "step 4 consumed tokens 4096" "$python" "$here/read_checkpoint_h5py.py" "$step4"
expect zero "36 tensors" "$python" "$here/read_checkpoint_h5py.py" "$step4"
expect zero "model/final_norm.weight shape (128,) mean " "$python" "$here/read_checkpoint_h5py.py" "$step4"

# Damage: verify names it and exits 1 (not 0, not a signal's 128 + n).
expect_damage() {
  local text="$1" dir="$2"
  expect nonzero "$text" "$moe_ckpt" verify "$dir"
  "$moe_ckpt" verify "$dir" >/dev/null 2>&1
  local status=$?
  [ $status -eq 1 ] || { echo "FAIL: verify $dir exited $status, not 1"; failures=$((failures + 1)); }
}
cp -r "$step4" "$tmp/uncommitted" && rm "$tmp/uncommitted/COMMIT"
expect_damage "COMMIT: missing" "$tmp/uncommitted"
expect zero "NOT committed" "$moe_ckpt" ls "$tmp/uncommitted"

cp -r "$step4" "$tmp/flipped"
"$python" - "$tmp/flipped/state.h5" <<'EOF'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    offset = f["model/final_norm.weight"].id.get_offset()
with open(sys.argv[1], "r+b") as g:
    g.seek(offset + 1)
    byte = g.read(1)[0]
    g.seek(offset + 1)
    g.write(bytes([byte ^ 0xFF]))
EOF
expect_damage "model/final_norm.weight: checksum mismatch" "$tmp/flipped"
expect zero "36 tensors in both, 1 of them differ" "$moe_ckpt" diff "$step4" "$tmp/flipped"
expect_line '^model/final_norm\.weight +\[128\] +([1-9]|0\.)[0-9.e+-]*$' "$moe_ckpt" diff "$step4" "$tmp/flipped"

cp -r "$step4" "$tmp/no_moment"
"$python" - "$tmp/no_moment/state.h5" <<'EOF'
import sys
import h5py
with h5py.File(sys.argv[1], "r+") as f:
    del f["optimizer/exp_avg_sq/final_norm.weight"]
EOF
expect_damage "model/final_norm.weight: has no optimizer/exp_avg_sq/final_norm.weight" "$tmp/no_moment"

cp -r "$step4" "$tmp/truncated"
truncate -s $(($(stat -c %s "$tmp/truncated/state.h5") / 2)) "$tmp/truncated/state.h5"
expect_damage "state.h5: opening" "$tmp/truncated"
expect nonzero "truncated file" "$moe_ckpt" ls "$tmp/truncated"
expect nonzero "truncated file" "$moe_ckpt" diff "$step4" "$tmp/truncated"

# Usage errors.
expect nonzero "A subcommand is required" "$moe_ckpt"
expect nonzero "STEP_DIR is required" "$moe_ckpt" verify
expect nonzero "B is required" "$moe_ckpt" diff "$step4"
expect nonzero "'$tmp/none' is not a directory" "$moe_ckpt" verify "$tmp/none"
expect nonzero "'$tmp/none' is not a directory" "$moe_ckpt" ls "$tmp/none"
expect nonzero "'$tmp/ck' has no state.h5" "$moe_ckpt" ls "$tmp/ck"
expect nonzero "unknown subcommand 'frob' (moe-ckpt has ls, verify, diff)" "$moe_ckpt" frob "$step4"
# A run directory given for a step directory: said, with the step to give instead.
expect nonzero "'$tmp/ck' has no state.h5: it is a run directory, not a step directory; its newest committed step is $tmp/ck/step_00000004" \
  "$moe_ckpt" verify "$tmp/ck"
mkdir -p "$tmp/no_steps/step_00000009"
expect nonzero "'$tmp/no_steps' has no state.h5 and no committed step directory (step_XXXXXXXX) under it" \
  "$moe_ckpt" verify "$tmp/no_steps"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
