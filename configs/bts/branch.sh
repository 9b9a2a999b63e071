#!/usr/bin/env bash
# BTS step 1, Branch (issue 9): a dense seed model trained on the blend of the three domains,
# then one branch per domain continuing from the seed's weights (init.method: load: fresh
# optimizer and schedule) on that domain alone. Each branch is a dense domain expert.
#   configs/bts/branch.sh [BUILD_DIR]     (from the repository root; corpora/ from launch/prepare_corpora.sh)
# Environment: SEED_STEPS (default 600), BRANCH_STEPS (default 300), OUT (default runs/bts).
set -euo pipefail
build="${1:-build}"
out="${OUT:-runs/bts}"
seed_steps="${SEED_STEPS:-600}"
branch_steps="${BRANCH_STEPS:-300}"
config=configs/experiments/upcycling/dense.yaml  # the dense quickstart shape on the blend
mkdir -p "$out"
"$build/moe-train" --config "$config" --set train.steps="$seed_steps" \
  --set train.warmup_steps=$((seed_steps / 10)) --set checkpoint.dir="$out/seed" \
  --set log.metrics_file="$out/seed.jsonl" > "$out/seed.log" 2>&1
seed="$out/seed/$(ls "$out/seed" | grep '^step_' | tail -1)"
for domain in bible austen code; do
  "$build/moe-train" --config "$config" --set init.method=load --set init.from="$seed" \
    --set data.train="corpora/${domain}_train 1.0" --set train.steps="$branch_steps" \
    --set train.warmup_steps=$((branch_steps / 10)) --set checkpoint.dir="$out/$domain" \
    --set log.metrics_file="$out/$domain.jsonl" > "$out/$domain.log" 2>&1
  echo "$domain: $(grep '^eval step' "$out/$domain.log" | tail -1)"
done
