#!/usr/bin/env bash
# FSSDP through the real moe-train and moe-eval: training with parallel.experts: fssdp on 2 ranks,
# its checkpoint resumed under expert parallelism and on one rank, an EP checkpoint resumed under
# FSSDP, evaluation in both, ZeRO-1 and expert_tp under FSSDP trained and resumed; and the
# configurations FSSDP refuses. LLEP (parallel.experts: llep) trained and resumed under EP, and
# its refusals.
#   test_fssdp.sh <moe-train> <moe-eval> <repo root> <mpirun flags...>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
moe_train="$1"
moe_eval="$2"
root="$3"
shift 3
cd "$root"  # the config names its datasets relative to the repository
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
small=(--config configs/quickstart.yaml --set model.n_layers=2 --set model.d_model=32
  --set model.n_heads=2 --set model.n_kv_heads=2 --set moe.expert_hidden=32
  --set model.ffn_hidden=64 --set data.seq_len=32 --set train.micro_batch_size=2
  --set train.warmup_steps=1 --set train.eval_batches=1 --set log.interval=1)
fssdp=(--set parallel.experts=fssdp --set fssdp.slots=1)

expect zero "fssdp.ranks_per_node = 2 (detected)" "$@" -np 2 "$moe_train" "${small[@]}" \
  "${fssdp[@]}" --set train.steps=3 --set checkpoint.dir="$tmp/run"
expect zero "| expert work L0 " "$@" -np 2 "$moe_train" "${small[@]}" "${fssdp[@]}" \
  --set train.steps=2 --set checkpoint.dir="$tmp/logged"
expect zero "MB/step | copies L0 " "$@" -np 2 "$moe_train" "${small[@]}" "${fssdp[@]}" \
  --set train.steps=2
expect zero "resumed from $tmp/run/step_00000003 at step 3" "$@" -np 2 "$moe_train" \
  "${small[@]}" --set parallel.ep=2 --set train.steps=4 --set checkpoint.dir="$tmp/run"
expect zero "resumed from $tmp/run/step_00000004 at step 4" "$moe_train" "${small[@]}" \
  "${fssdp[@]}" --set train.steps=5 --set checkpoint.dir="$tmp/run"
expect zero "resumed from $tmp/run/step_00000005 at step 5" "$@" -np 2 "$moe_train" \
  "${small[@]}" "${fssdp[@]}" --set train.steps=6 --set checkpoint.dir="$tmp/run"
one="$("$moe_eval" --checkpoint "$tmp/run/step_00000006" --json 2>/dev/null)"
two="$("$@" -np 2 "$moe_eval" --checkpoint "$tmp/run/step_00000006" --json 2>/dev/null)"
if [ -n "$one" ] && [ "$one" = "$two" ]; then
  echo "ok: the FSSDP checkpoint scores the same on 1 and 2 ranks"
else
  echo "FAIL: moe-eval on 1 rank '$one', on 2 ranks '$two'"
  failures=$((failures + 1))
fi

# Experts split over TP under FSSDP: tp 2 x dp 2, each TP rank holding its slices; resumed on one
# rank.
expect zero "experts split over tp" "$@" -np 4 "$moe_train" "${small[@]}" "${fssdp[@]}" \
  --set parallel.tp=2 --set parallel.expert_tp=true --set model.vocab_size=258 \
  --set train.steps=2 --set checkpoint.dir="$tmp/expert_tp"
expect zero "resumed from $tmp/expert_tp/step_00000002 at step 2" "$moe_train" "${small[@]}" \
  --set model.vocab_size=258 --set train.steps=3 --set checkpoint.dir="$tmp/expert_tp"
expect zero "step 2/2" "$@" -np 2 "$moe_train" "${small[@]}" "${fssdp[@]}" --set parallel.zero=1 \
  --set train.steps=2 --set checkpoint.dir="$tmp/zero"
expect zero "resumed from $tmp/zero/step_00000002 at step 2" "$@" -np 2 "$moe_train" \
  "${small[@]}" "${fssdp[@]}" --set parallel.zero=1 --set train.steps=3 --set checkpoint.dir="$tmp/zero"
expect nonzero "fssdp.window" "$moe_train" "${small[@]}" "${fssdp[@]}" --set fssdp.window=0
expect nonzero "parallel.experts" "$moe_train" "${small[@]}" --set parallel.experts=hecate

# LLEP: trained on 2 ranks with every forward planned (no threshold, small chunks), resumed under
# expert parallelism; its refusals.
llep=(--set parallel.experts=llep --set parallel.ep=2 --set llep.imbalance_threshold=0
  --set llep.min_tokens=1 --set moe.router_skew=4)
expect zero "MB/step | copies L0 " "$@" -np 2 "$moe_train" "${small[@]}" "${llep[@]}" \
  --set train.steps=2 --set checkpoint.dir="$tmp/llep"
expect zero "resumed from $tmp/llep/step_00000002 at step 2" "$@" -np 2 "$moe_train" \
  "${small[@]}" --set parallel.ep=2 --set moe.router_skew=4 --set train.steps=3 \
  --set checkpoint.dir="$tmp/llep"
expect nonzero "parallel.ep = 3 must divide moe.num_experts = 8" "$moe_train" "${small[@]}" \
  "${llep[@]}" --set parallel.ep=3
expect nonzero "llep.capacity_factor" "$moe_train" "${small[@]}" "${llep[@]}" \
  --set llep.capacity_factor=0.5
expect nonzero "parallel.experts = llep moves whole experts between ranks" "$moe_train" \
  "${small[@]}" "${llep[@]}" --set parallel.expert_tp=true
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
