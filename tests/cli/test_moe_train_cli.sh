#!/usr/bin/env bash
# moe-train's command line and its error paths, through the real binary: each bad invocation must
# exit non-zero with one clear message, never crash or hang.
#   test_moe_train_cli.sh <moe-train> <repo root> [mpirun flags...]
set -uo pipefail
moe_train="$1"
root="$2"
shift 2
failures=0

# expect <exit: zero|nonzero> <text the output must contain> <command...>
expect() {
  local want="$1" text="$2"
  shift 2
  local output status
  output="$("$@" 2>&1)"
  status=$?
  if { [ "$want" = zero ] && [ $status -ne 0 ]; } || { [ "$want" = nonzero ] && [ $status -eq 0 ]; }; then
    echo "FAIL: exit $status ($want expected): $*"; echo "$output" | tail -5; failures=$((failures + 1))
  elif [[ "$output" != *"$text"* ]]; then
    echo "FAIL: no '$text' in the output of: $*"; echo "$output" | tail -5; failures=$((failures + 1))
  else
    echo "ok: $*"
  fi
}

config="$root/configs/quickstart.yaml"
expect nonzero "--config is required" "$moe_train"
expect nonzero "cannot open config file 'missing.yaml'" "$moe_train" --config missing.yaml
expect nonzero "unknown key 'moe.num_expert' in --set moe.num_expert=4; did you mean 'moe.num_experts'?" \
  "$moe_train" --config "$config" --set moe.num_expert=4
expect nonzero "moe.top_k = 9 is out of range" "$moe_train" --config "$config" --set moe.top_k=9
expect nonzero "/no/such/corpus" "$moe_train" --config "$config" --set data.train=/no/such/corpus
expect nonzero "train.device = cuda" "$moe_train" --config "$config" --set train.device=cuda
expect zero "num_experts: 8" "$moe_train" --config "$config" --print-config
if [ $# -gt 0 ]; then
  expect nonzero "runs on one rank in this build (got 2 ranks)" "$@" -np 2 "$moe_train" --config "$config"
fi
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
