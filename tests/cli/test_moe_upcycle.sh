#!/usr/bin/env bash
# moe-upcycle through the real binaries: a dense model trained by moe-train becomes an MoE
# checkpoint that moe-train then trains from (also in one command, init.method), and bad input is
# one clear error.
#   test_moe_upcycle.sh <moe-upcycle> <moe-train> <repo root>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
upcycle="$1"
moe_train="$2"
root="$3"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$root"
small=(--set model.n_layers=2 --set train.warmup_steps=1 --set train.eval_batches=1)
"$moe_train" --config configs/quickstart.yaml "${small[@]}" --set moe.first_k_dense=2 \
  --set train.steps=2 --set checkpoint.dir="$tmp/dense" > "$tmp/dense.log" 2>&1 ||
  { echo "FAIL: dense run"; tail -5 "$tmp/dense.log"; exit 1; }
moe=(--config configs/quickstart.yaml "${small[@]}" --set moe.expert_hidden=512)
expect zero "(drop) -> $tmp/moe/step_00000000" "$upcycle" --dense "$tmp/dense/step_00000002" \
  "${moe[@]}" --method drop --ratio 0.5 --seed 1 --output "$tmp/moe"
expect zero "resumed from $tmp/moe/step_00000000 at step 0" "$moe_train" "${moe[@]}" \
  --set train.steps=2 --set checkpoint.dir="$tmp/moe"
# The same in one command: moe-train upcycles init.from into step 0 of checkpoint.dir first.
expect zero "resumed from $tmp/one/step_00000000 at step 0" "$moe_train" "${moe[@]}" \
  --set init.method=copy --set init.from="$tmp/dense/step_00000002" --set train.steps=1 \
  --set checkpoint.dir="$tmp/one"
expect nonzero "init.method = copy writes the upcycled model as step 0 of checkpoint.dir" \
  "$moe_train" "${moe[@]}" --set init.method=copy --set init.from="$tmp/dense/step_00000002"

expect nonzero "--dense is required" "$upcycle" --config configs/quickstart.yaml --output "$tmp/x"
expect nonzero "--method: bogus not in" "$upcycle" --dense "$tmp/dense/step_00000002" \
  "${moe[@]}" --method bogus --output "$tmp/x"
expect nonzero "must equal the dense ffn_hidden = 512" "$upcycle" \
  --dense "$tmp/dense/step_00000002" --config configs/quickstart.yaml "${small[@]}" --output "$tmp/x"
expect nonzero "is not a dense model" "$upcycle" --dense "$tmp/moe/step_00000002" "${moe[@]}" \
  --output "$tmp/x"
expect nonzero "ratio must be within [0, 1]" "$upcycle" --dense "$tmp/dense/step_00000002" \
  "${moe[@]}" --method drop --ratio 2 --output "$tmp/x"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
