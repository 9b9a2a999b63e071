#!/usr/bin/env bash
# moe-train's command line and its error paths, through the real binary: each bad invocation must
# exit non-zero with one clear message, never crash or hang.
#   test_moe_train_cli.sh <moe-train> <repo root> [mpirun flags...]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
moe_train="$1"
root="$2"
shift 2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$root"  # the config names its datasets relative to the repository
config="$root/configs/quickstart.yaml"
expect nonzero "--config is required" "$moe_train"
expect nonzero "cannot open config file 'missing.yaml'" "$moe_train" --config missing.yaml
expect nonzero "unknown key 'moe.num_expert' in --set moe.num_expert=4; did you mean 'moe.num_experts'?" \
  "$moe_train" --config "$config" --set moe.num_expert=4
expect nonzero "moe.top_k = 9 is out of range" "$moe_train" --config "$config" --set moe.top_k=9
expect nonzero "/no/such/corpus" "$moe_train" --config "$config" --set data.train=/no/such/corpus
expect nonzero "train.device = cuda" "$moe_train" --config "$config" --set train.device=cuda
expect zero "num_experts: 8" "$moe_train" --config "$config" --print-config
# log.level: warning leaves out the info lines (the config, progress, the done line).
tiny=(--set train.steps=2 --set train.warmup_steps=1 --set model.n_layers=1 --set train.eval_batches=1)
expect zero "done: 2 steps" "$moe_train" --config "$config" "${tiny[@]}"
quiet="$("$moe_train" --config "$config" "${tiny[@]}" --set log.level=warning 2>&1)"
if [ $? -ne 0 ] || [[ "$quiet" == *"done:"* ]] || [[ "$quiet" == *"num_experts"* ]]; then
  echo "FAIL: log.level=warning still printed info lines or failed:"; echo "$quiet" | tail -5
  failures=$((failures + 1))
else
  echo "ok: log.level=warning prints no info lines"
fi
# A path the run writes to that cannot be written ends it before its first step, naming the key.
touch "$tmp/file"
# Prints ok when the output of the command (run expecting failure) has `text` and no training step.
fails_before_training() {
  local text="$1"
  shift
  local output
  output="$("$@" 2>&1)"
  if [ $? -eq 0 ] || [[ "$output" != *"$text"* ]] || [[ "$output" == *"step 1/"* ]]; then
    echo "FAIL: no '$text' before the first step: $*"; echo "$output" | tail -3
    failures=$((failures + 1))
  else
    echo "ok: $text"
  fi
}
long=(--config "$config" --set train.steps=600 --set model.n_layers=1 --set log.interval=1)
fails_before_training "checkpoint.dir = '$tmp/file': '$tmp/file' is not a directory" \
  "$moe_train" "${long[@]}" --set checkpoint.dir="$tmp/file"
fails_before_training "checkpoint.dir = '/proc/foo': cannot create '/proc/foo'" \
  "$moe_train" "${long[@]}" --set checkpoint.dir=/proc/foo
fails_before_training "log.metrics_file = '$tmp/file/metrics.jsonl': '$tmp/file' is not a directory" \
  "$moe_train" "${long[@]}" --set log.metrics_file="$tmp/file/metrics.jsonl"
fails_before_training "log.metrics_file = '/proc/metrics.jsonl': cannot write '/proc/metrics.jsonl'" \
  "$moe_train" "${long[@]}" --set log.metrics_file=/proc/metrics.jsonl
expect zero "done: 2 steps" "$moe_train" --config "$config" "${tiny[@]}" \
  --set checkpoint.dir="$tmp/new/checkpoints" --set log.metrics_file="$tmp/new/m.jsonl"
# --plan: the memory per rank, without training, data or an MPI job.
plan=(--config "$config" --plan --set data.train=/no/such/corpus)
for line in "memory plan: 1 rank = tp 1 x dp 1" "micro-batch: 8 x 128 = 1024 tokens per rank" \
  "  parameters " "  gradients " "  optimizer state " "  compute copy " "  rope tables " \
  "  activations, no recompute " "  activations, recompute " "  total "; do
  expect zero "$line" "$moe_train" "${plan[@]}"
done
expect zero "precision bf16, train.recompute off" "$moe_train" "${plan[@]}" --set train.precision=bf16
expect zero "memory plan: 4 ranks = tp 1 x dp 4, experts over ep 4 (ep), ZeRO-1" \
  "$moe_train" "${plan[@]}" --world 4 --set parallel.ep=4 --set parallel.zero=1
expect zero "expert rows per MoE layer and rank: 2048, the balanced expectation" "$moe_train" "${plan[@]}"
expect zero "warning: rank 0 needs" "$moe_train" --config configs/gpu/mixtral-style.yaml --plan \
  --device-memory 1GiB
fits="$("$moe_train" --config configs/gpu/mixtral-style.yaml --plan --device-memory 80GB 2>&1)"
if [ $? -ne 0 ] || [[ "$fits" == *"warning:"* ]] || [[ "$fits" != *"of 74.51 GiB (--device-memory)"* ]]; then
  echo "FAIL: --plan --device-memory 80GB warned or failed:"; echo "$fits" | tail -3
  failures=$((failures + 1))
else
  echo "ok: no warning when the plan fits --device-memory"
fi
expect nonzero "--device-memory '80 gigs' is not a memory size" "$moe_train" "${plan[@]}" \
  --device-memory "80 gigs"
expect nonzero "--config is required" "$moe_train" --plan
expect nonzero "--world requires --plan" "$moe_train" --config "$config" --world 4
expect nonzero "parallel.tp = 2 does not divide the 3 ranks of the job" "$moe_train" "${plan[@]}" \
  --world 3 --set parallel.tp=2 --set model.vocab_size=258
if [ $# -gt 0 ]; then
  # --plan under mpirun: the job's world size, printed once.
  expect zero "memory plan: 2 ranks = tp 1 x dp 2" "$@" -np 2 "$moe_train" "${plan[@]}"
  # Every rank stops with rank 0's verdict (no rank is left waiting).
  fails_before_training "checkpoint.dir = '/proc/foo'" "$@" -np 2 "$moe_train" "${long[@]}" \
    --set checkpoint.dir=/proc/foo
  expect nonzero "parallel.tp = 1 x parallel.dp = 1 = 1 ranks, but the job has 2" "$@" -np 2 "$moe_train" --config "$config" --set parallel.dp=1
  expect nonzero "parallel.tp = 2 must divide model.vocab_size = 257" "$@" -np 2 "$moe_train" --config "$config" --set parallel.tp=2
  expect nonzero "valid keys in 'parallel' are: tp, dp, ep, expert_tp, experts, zero" "$@" -np 2 "$moe_train" --config "$config" --set parallel.fssdp=true
  # Expert and tensor parallel runs start, train and finish (their numbers are tests/mpi's).
  small=(--set train.steps=4 --set train.warmup_steps=1 --set model.n_layers=2 --set train.eval_batches=1)
  expect zero "done: 4 steps" "$@" -np 2 "$moe_train" --config "$config" --set parallel.ep=2 "${small[@]}"
  expect zero "done: 4 steps" "$@" -np 2 "$moe_train" --config "$config" --set parallel.tp=2 \
    --set model.vocab_size=258 --set parallel.expert_tp=true "${small[@]}"
  # One rank failing mid-run ends the whole job quickly, with that rank's message.
  start=$(date +%s)
  expect nonzero "[rank 1] trainer/training_loop.cpp" env MOE_FAIL_RANK=1 MOE_FAIL_STEP=3 "$@" -np 2 \
    -x MOE_FAIL_RANK -x MOE_FAIL_STEP "$moe_train" --config "$config" --set train.steps=20 \
    --set train.warmup_steps=1 --set model.n_layers=1 --set train.micro_batch_size=1
  elapsed=$(( $(date +%s) - start ))
  if [ $elapsed -gt 60 ]; then echo "FAIL: the job took ${elapsed} s to end"; failures=$((failures + 1)); fi
  # A rank that stops mid-run (MOE_STALL_*: rank 1 sends itself SIGSTOP at step 3) ends the job
  # once rank 0's watchdog sees step 3 outlast train.step_timeout_s, naming the step and the phase
  # it waits in. (`timeout` only keeps a broken watchdog from hanging the suite.)
  stall=(--set train.steps=8 --set train.warmup_steps=1 --set model.n_layers=1
    --set train.micro_batch_size=1 --set train.eval_interval=4 --set train.step_timeout_s=20)
  start=$(date +%s)
  expect nonzero "[rank 0] error: watchdog: step 3 stuck in gradient sync for " \
    env MOE_STALL_RANK=1 MOE_STALL_STEP=3 timeout 120 "$@" -np 2 -x MOE_STALL_RANK -x MOE_STALL_STEP \
    "$moe_train" --config "$config" "${stall[@]}"
  elapsed=$(( $(date +%s) - start ))
  if [ $elapsed -gt 60 ]; then echo "FAIL: the stalled job took ${elapsed} s to end"; failures=$((failures + 1)); fi
  # The same run without the stall finishes, evaluation and the final save included, and exits
  # (a 20 s limit leaves a loaded CI machine room for a normal step).
  ckpt="$(mktemp -d)"
  expect zero "done: 8 steps" timeout 120 "$@" -np 2 "$moe_train" --config "$config" "${stall[@]}" \
    --set checkpoint.dir="$ckpt/run"
  rm -rf "$ckpt"
fi
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
