#!/usr/bin/env bash
# moe-eval through the real binaries: the loss of a checkpoint is the trainer's own final
# validation loss (in f32 and in bf16), the same in another layout (2 ranks, experts split over
# them), an imported Hugging Face model (no training data in its config) scored on --data alone,
# --expert-loads counts exactly the scored tokens in any layout, and every bad input is one clear
# error.
#   test_moe_eval.sh <moe-eval> <moe-train> <moe-convert> <repo root> <mpirun flags...>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
moe_eval="$1"
moe_train="$2"
convert="$3"
root="$4"
shift 4
cd "$root"  # the config names its datasets relative to the repository
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$moe_train" --config configs/quickstart.yaml --set train.steps=3 --set train.warmup_steps=1 \
  --set model.n_layers=2 --set train.eval_batches=2 --set checkpoint.dir="$tmp/ck" \
  > "$tmp/train.log" 2>&1 || { echo "FAIL: training run"; tail -5 "$tmp/train.log"; exit 1; }
step="$tmp/ck/step_00000003"
trained="$(grep -o 'val_loss [0-9.]*' "$tmp/train.log" | tail -1 | cut -d' ' -f2)"

# Same sequences as the trainer's last evaluation (train.eval_batches global batches of each set):
# same mean loss, which the trainer prints to 4 decimals.
one="$("$moe_eval" --checkpoint "$step" 2>/dev/null | grep '^mean' | cut -d' ' -f2)"
if [ -z "$trained" ] || [ "$(printf '%.4f' "$one")" != "$trained" ]; then
  echo "FAIL: moe-eval mean '$one' is not the trainer's val_loss '$trained'"; failures=$((failures + 1))
else
  echo "ok: moe-eval mean $one = the trainer's $trained"
fi
two="$("$@" -np 2 "$moe_eval" --checkpoint "$step" --set parallel.ep=2 --json 2>/dev/null)"
if [[ "$two" != *"\"step\": 3"* ]] || [[ "$two" != *"\"mean\": $(printf '%.4f' "$one")"* ]]; then
  echo "FAIL: 2 ranks with ep 2 gave '$two', one rank '$one'"; failures=$((failures + 1))
else
  echo "ok: 2 ranks, ep 2: $two"
fi
# Another micro-batch layout of the same global batch (8 = 2 x 4 micro-batches) scores the same
# sequences on 2 ranks: the same loss.
split="$("$@" -np 2 "$moe_eval" --checkpoint "$step" --set train.micro_batch_size=2 \
  --set train.grad_accum=4 --json 2>/dev/null)"
if [[ "$split" != *"\"mean\": $(printf '%.4f' "$one")"* ]]; then
  echo "FAIL: micro_batch_size 2 x grad_accum 4 on 2 ranks gave '$split', one rank '$one'"
  failures=$((failures + 1))
else
  echo "ok: micro_batch_size 2 x grad_accum 4 on 2 ranks: $split"
fi
expect zero "bible_val" "$moe_eval" --checkpoint "$step" --data corpora/bible_val

# --expert-loads: 3 sequences of 128 tokens per set (eval_batches 1 x micro_batch_size 3). On 2
# ranks the shares are 1 and 2 sequences, each run as one forward of 3 rows, so 3 padding rows are
# routed: the counts must still be top_k 2 x 384 per layer, and the same file as on one rank
# (experts split over the 2 ranks).
loads=(--set train.eval_batches=1 --set train.micro_batch_size=3)
"$moe_eval" --checkpoint "$step" "${loads[@]}" --expert-loads "$tmp/loads1.json" > /dev/null 2>&1 ||
  { echo "FAIL: moe-eval --expert-loads on one rank"; failures=$((failures + 1)); }
"$@" -np 2 "$moe_eval" --checkpoint "$step" "${loads[@]}" --set parallel.ep=2 \
  --expert-loads "$tmp/loads2.json" > /dev/null 2>&1 ||
  { echo "FAIL: moe-eval --expert-loads on 2 ranks"; failures=$((failures + 1)); }
sums="$(/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join("%s:%d:%d:%d" % (s["name"], s["tokens"], l["layer"], sum(l["counts"]))
               for s in d["sets"] for l in s["layers"]))' "$tmp/loads1.json")"
want="bible_val:384:0:768 bible_val:384:1:768 austen_val:384:0:768 austen_val:384:1:768"
want="$want code_val:384:0:768 code_val:384:1:768"
if [ "$sums" != "$want" ]; then
  echo "FAIL: expert loads (set:tokens:layer:assignments) '$sums', want '$want'"
  failures=$((failures + 1))
else
  echo "ok: expert loads sum to top_k x 384 tokens per set and layer"
fi
if ! cmp -s "$tmp/loads1.json" "$tmp/loads2.json"; then
  echo "FAIL: expert loads differ between 1 and 2 ranks"; diff "$tmp/loads1.json" "$tmp/loads2.json"
  failures=$((failures + 1))
else
  echo "ok: the same expert loads on 1 and 2 ranks"
fi

# A bf16 run's checkpoint is scored in bf16, as the run validated, from the loaded masters' bf16
# copies (not the copies of the initial weights).
"$moe_train" --config configs/quickstart.yaml --set train.steps=3 --set train.warmup_steps=1 \
  --set model.n_layers=2 --set train.eval_batches=2 --set train.precision=bf16 \
  --set checkpoint.dir="$tmp/bf16" > "$tmp/bf16.log" 2>&1 ||
  { echo "FAIL: bf16 training run"; tail -5 "$tmp/bf16.log"; exit 1; }
trained_bf16="$(grep -o 'val_loss [0-9.]*' "$tmp/bf16.log" | tail -1 | cut -d' ' -f2)"
bf16="$("$moe_eval" --checkpoint "$tmp/bf16/step_00000003" 2>/dev/null | grep '^mean' | cut -d' ' -f2)"
if [ -z "$trained_bf16" ] || [ "$(printf '%.4f' "$bf16")" != "$trained_bf16" ]; then
  echo "FAIL: moe-eval of the bf16 run gave '$bf16', its trainer '$trained_bf16'"
  failures=$((failures + 1))
else
  echo "ok: moe-eval of the bf16 run: $bf16 = the trainer's $trained_bf16"
fi

# An imported model's config names no dataset (data.train and data.valid empty): evaluation reads
# the --data sets and opens no training set.
"$convert" hf-to-moeforge --input tests/fixtures/hf/llama --output "$tmp/llama" > /dev/null ||
  { echo "FAIL: importing the llama fixture"; exit 1; }
imported="$tmp/llama/step_00000000"
expect zero "train: \"\"" grep "^  train:" "$imported/../config.yaml"
expect zero "bible_val " "$moe_eval" --checkpoint "$imported" --data corpora/bible_val
expect nonzero "no validation data: pass --data PREFIX" "$moe_eval" --checkpoint "$imported"

expect nonzero "--checkpoint is required" "$moe_eval"
expect nonzero "is not a committed checkpoint" "$moe_eval" --checkpoint "$tmp/nowhere"
mkdir -p "$tmp/partial" && cp "$step/state.h5" "$tmp/partial/"
expect nonzero "is not a committed checkpoint" "$moe_eval" --checkpoint "$tmp/partial"
expect nonzero "/no/such/prefix" "$moe_eval" --checkpoint "$step" --data /no/such/prefix
expect nonzero "unknown key 'model.d_modle'" "$moe_eval" --checkpoint "$step" --set model.d_modle=3
expect nonzero "has shape" "$moe_eval" --checkpoint "$step" --set moe.num_experts=4
expect nonzero "cannot write --expert-loads file '$tmp/no/dir/loads.json'" "$moe_eval" \
  --checkpoint "$step" --expert-loads "$tmp/no/dir/loads.json"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
