#!/usr/bin/env bash
# BTS through the real binaries: a seed and three branches, the stitched model trained with one
# decoder per rank (3 ranks), evaluated, resumed on 2 ranks without one expert (its rank is no
# longer needed), then with a new expert added; a self-contained checkpoint evaluated and resumed
# after the decoders' directories are gone; and the error paths of model.kind bts.
#   test_bts.sh <moe-train> <moe-eval> <repo root> <mpirun flags...>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
moe_train="$1"
moe_eval="$2"
root="$3"
shift 3
cd "$root"  # the configs name their datasets relative to the repository
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
decoder=(--config configs/quickstart.yaml --set model.n_layers=2 --set moe.first_k_dense=2
  --set model.d_model=32 --set model.n_heads=2 --set model.n_kv_heads=2 --set model.ffn_hidden=64
  --set data.seq_len=32 --set train.micro_batch_size=2 --set train.warmup_steps=1
  --set train.eval_batches=1 --set log.interval=1)
expect zero "saved $tmp/seed/step_00000003" "$moe_train" "${decoder[@]}" --set train.steps=3 \
  --set checkpoint.dir="$tmp/seed"
for domain in bible code austen; do
  expect zero "loaded the weights of" "$moe_train" "${decoder[@]}" --set train.steps=2 \
    --set init.method=load --set init.from="$tmp/seed/step_00000003" \
    --set data.train="corpora/${domain}_train 1.0" --set checkpoint.dir="$tmp/$domain"
done

cat > "$tmp/bts.yaml" <<YAML
model:
  kind: bts
bts:
  seed: $tmp/seed
  experts: [$tmp/bible, $tmp/code]
  stitch_every: 1
data:
  train: corpora/bible_train 0.5, corpora/code_train 0.5
  valid: corpora/bible_val, corpora/code_val
  seq_len: 32
train:
  steps: 3
  micro_batch_size: 2
  warmup_steps: 1
  eval_batches: 1
checkpoint:
  dir: $tmp/stitch
log:
  interval: 1
YAML
expect zero "decoder:group rank hub:0 bible:1 code:2" "$@" -np 3 "$moe_train" \
  --config "$tmp/bts.yaml" --set parallel.dp=1
expect zero "bible_val" "$moe_eval" --checkpoint "$tmp/stitch/step_00000003"
# Without bible: two ranks are enough, the others' stitch parameters resume.
expect zero "expert 'bible' is not in this run" "$@" -np 2 "$moe_train" --config "$tmp/bts.yaml" \
  --set parallel.dp=1 --set 'bts.drop=[bible]' --set train.steps=5
expect zero "resumed from $tmp/stitch/step_00000005 at step 5" "$moe_train" \
  --config "$tmp/bts.yaml" --set 'bts.drop=[bible]' --set train.steps=6
# A new expert gets new stitch parameters only.
expect zero "expert 'austen' is new" "$moe_train" --config "$tmp/bts.yaml" \
  --set "bts.experts=[$tmp/bible, $tmp/code, $tmp/austen]" --set 'bts.drop=[bible]' \
  --set train.steps=7
expect zero "stitch layers (kind@after layer): hub_into_experts@1 experts_into_hub@2" \
  "$moe_eval" --checkpoint "$tmp/stitch/step_00000007"

# Errors.
expect nonzero "model.kind = bts runs each decoder whole on one rank" "$moe_train" \
  --config "$tmp/bts.yaml" --set parallel.tp=2
expect nonzero "bts.seed = '$tmp/none' is not a directory" "$moe_train" --config "$tmp/bts.yaml" \
  --set bts.seed="$tmp/none" --set checkpoint.dir="$tmp/e1"
expect nonzero "would leave ranks idle" "$@" -np 4 "$moe_train" --config "$tmp/bts.yaml" \
  --set parallel.dp=1 --set checkpoint.dir="$tmp/e2"
expect nonzero "bts.drop names 'math'" "$moe_train" --config "$tmp/bts.yaml" \
  --set 'bts.drop=[math]' --set checkpoint.dir="$tmp/e3"
expect nonzero "bts.* is set but model.kind is decoder" "$moe_train" --config "$tmp/bts.yaml" \
  --set model.kind=decoder
expect nonzero "must divide the decoders' n_layers = 2" "$moe_train" --config "$tmp/bts.yaml" \
  --set bts.stitch_every=3 --set checkpoint.dir="$tmp/e4"
expect nonzero "expected a list of strings" "$moe_train" --config "$tmp/bts.yaml" \
  --set bts.experts="$tmp/code"

# Self-contained: the checkpoint carries its decoders and works once their directories are gone.
expect zero "saved $tmp/whole/step_00000002" "$moe_train" --config "$tmp/bts.yaml" \
  --set bts.self_contained=true --set checkpoint.dir="$tmp/whole" --set train.steps=2
before="$("$moe_eval" --checkpoint "$tmp/whole/step_00000002" --json 2>/dev/null)"
if /usr/bin/python3 -c 'import json, sys; json.loads(sys.argv[1])' "$before"; then
  echo "ok: moe-eval --json prints JSON alone on stdout"
else
  echo "FAIL: moe-eval --json stdout is not one JSON object: '$before'"
  failures=$((failures + 1))
fi
mkdir "$tmp/moved" && mv "$tmp/seed" "$tmp/bible" "$tmp/code" "$tmp/moved/"
expect nonzero "bts.seed = '$tmp/seed' is not a directory" "$moe_eval" \
  --checkpoint "$tmp/stitch/step_00000007"
expect zero "hub=$tmp/whole/step_00000002/decoders/hub" "$moe_eval" \
  --checkpoint "$tmp/whole/step_00000002"
after="$("$moe_eval" --checkpoint "$tmp/whole/step_00000002" --json 2>/dev/null)"
if [ -n "$before" ] && [ "$before" = "$after" ]; then
  echo "ok: the same losses from the carried decoders"
else
  echo "FAIL: losses before '$before' and after '$after' moving the decoders"
  failures=$((failures + 1))
fi
expect zero "resumed from $tmp/whole/step_00000002 at step 2" "$moe_train" \
  --config "$tmp/bts.yaml" --set bts.self_contained=true --set checkpoint.dir="$tmp/whole" \
  --set train.steps=3
expect zero "code=$tmp/whole/step_00000003/decoders/code" "$moe_eval" \
  --checkpoint "$tmp/whole/step_00000003"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
