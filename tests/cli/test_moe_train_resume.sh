#!/usr/bin/env bash
# Checkpoints through the real moe-train: a preemption signal (SIGUSR1 through mpirun, SIGTERM to a
# single process) saves and stops cleanly, also when it comes during a save, the next run
# resumes on its own, and a rank killed by SIGKILL halfway through a save leaves the previous
# checkpoint loadable and the partial one unused and cleaned up. A damaged newest checkpoint makes
# checkpoint.resume: auto fall back to the one before; an uncommitted one named by
# checkpoint.resume is an error that deletes nothing.
#   test_moe_train_resume.sh <moe-train> <repo root> <mpirun flags...>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
moe_train="$1"
root="$2"
shift 2
cd "$root"  # the config names its datasets relative to the repository
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
small=(--config configs/quickstart.yaml --set train.warmup_steps=1 --set model.n_layers=1
  --set train.eval_batches=1 --set log.interval=1)

# SIGUSR1 to mpirun (Open MPI forwards it to every rank; srun signals the ranks itself) after step
# 5: all ranks stop after the same step, save it, and exit 0.
"$@" -np 2 "$moe_train" "${small[@]}" --set train.steps=2000 --set checkpoint.dir="$tmp/signal" \
  > "$tmp/signal.log" 2>&1 &
job=$!
for _ in $(seq 1 240); do grep -q "step 5/" "$tmp/signal.log" && break; sleep 0.25; done
kill -USR1 "$job"
wait "$job"
status=$?
stopped="$(grep -o 'stopped after step [0-9]*' "$tmp/signal.log" | head -1 | grep -o '[0-9]*$')"
if [ $status -ne 0 ] || [ -z "$stopped" ]; then
  echo "FAIL: the signalled run exited $status without 'stopped after step N'"; tail -5 "$tmp/signal.log"
  failures=$((failures + 1))
else
  echo "ok: stopped after step $stopped on SIGUSR1"
  step_dir="$tmp/signal/$(printf 'step_%08d' "$stopped")"
  expect zero "COMMIT" ls "$step_dir"
  # The same command with more steps goes on from there (checkpoint.resume: auto).
  expect zero "resumed from $step_dir at step $stopped" "$@" -np 2 "$moe_train" "${small[@]}" \
    --set train.steps=$((stopped + 2)) --set checkpoint.dir="$tmp/signal"
fi

# SIGTERM (what Slurm sends first) to a single process does the same.
"$moe_train" "${small[@]}" --set train.steps=2000 --set checkpoint.dir="$tmp/term" \
  > "$tmp/term.log" 2>&1 &
job=$!
for _ in $(seq 1 240); do grep -q "step 3/" "$tmp/term.log" && break; sleep 0.25; done
kill -TERM "$job"
wait "$job"
status=$?
if [ $status -ne 0 ] || ! grep -q "on signal 15" "$tmp/term.log" || [ -z "$(ls "$tmp"/term/step_*/COMMIT 2>/dev/null)" ]; then
  echo "FAIL: SIGTERM: exit $status"; tail -5 "$tmp/term.log"; failures=$((failures + 1))
else
  echo "ok: SIGTERM saved $(ls -d "$tmp"/term/step_*) and exited 0"
fi

# init.method: load starts a fresh run from those weights: its first loss is the trained model's,
# far below a random init's.
first_loss() { grep -o 'step 1/1 | loss [0-9.]*' | grep -o '[0-9.]*$'; }
fresh="$("$moe_train" "${small[@]}" --set train.steps=1 2>&1 | first_loss)"
loaded="$("$moe_train" "${small[@]}" --set train.steps=1 --set init.method=load \
  --set init.from="$(ls -d "$tmp"/term/step_* | tail -1)" 2>&1 | first_loss)"
if [ -z "$loaded" ] || [ -z "$fresh" ] || ! awk -v a="$loaded" -v b="$fresh" 'BEGIN { exit !(a < b - 0.3) }'; then
  echo "FAIL: init.method=load: first loss '$loaded', from scratch '$fresh'"; failures=$((failures + 1))
else
  echo "ok: init.method=load starts at loss $loaded (from scratch: $fresh)"
fi

# Rank 1 dies by SIGKILL halfway through writing the step-4 checkpoint (test hook).
expect nonzero "signal 9" env MOE_FAIL_RANK=1 MOE_KILL_IN_SAVE=4 "$@" -np 2 -x MOE_FAIL_RANK \
  -x MOE_KILL_IN_SAVE "$moe_train" "${small[@]}" --set train.steps=6 \
  --set checkpoint.dir="$tmp/killed" --set checkpoint.interval=2
expect zero "COMMIT" ls "$tmp/killed/step_00000002"
expect nonzero "" ls "$tmp/killed/step_00000004/COMMIT"
expect zero "resumed from $tmp/killed/step_00000002 at step 2" "$@" -np 2 "$moe_train" \
  "${small[@]}" --set train.steps=6 --set checkpoint.dir="$tmp/killed" --set checkpoint.interval=2
expect zero "COMMIT" ls "$tmp/killed/step_00000006"
expect nonzero "No such file" ls "$tmp/killed/step_00000004.tmp"
# Resuming with other seeds or another seq_len says what that changes, each by its own key: a
# changed train.seed only seeded the init (no word of the data order); data.seed and data.seq_len do
# move the data.
"$moe_train" "${small[@]}" --set train.steps=2 --set checkpoint.dir="$tmp/saved" > /dev/null 2>&1
resumed=("$moe_train" "${small[@]}" --set train.steps=3 --set checkpoint.resume="$tmp/saved/step_00000002")
train_seed_log="$("${resumed[@]}" --set train.seed=7 2>&1)"
if [[ "$train_seed_log" != *"train.seed = 7 differs from the checkpoint's 42: it seeds the parameter init, which a resume does not redo, so training goes on the same"* ]] ||
  [[ "$train_seed_log" == *"data order"* ]]; then
  echo "FAIL: train.seed=7 on resume:"; grep -i "warn" <<< "$train_seed_log"; failures=$((failures + 1))
else
  echo "ok: a changed train.seed says it changes nothing but the init"
fi
expect zero "data.seed = 99 differs from the checkpoint's 1234: the data order from here on differs from the saved run's (sample 16 on of the new shuffle" \
  "${resumed[@]}" --set data.seed=99
expect zero "data.seq_len = 64 differs from the checkpoint's 128: the data position is kept in samples, so training goes on at sample 16 of the 64-token samples (1024 tokens into them; the saved run had read 2048)" \
  "${resumed[@]}" --set data.seq_len=64

# SIGTERM arriving halfway through the save of step 2 (test hook): that save is the last, no step
# follows, and the final line leaves out the validation loss, which was never measured.
signal_in_save() {  # <name> <command...>
  local name="$1" output status
  shift
  output="$("$@" "${small[@]}" --set train.steps=10 --set checkpoint.dir="$tmp/$name" \
    --set checkpoint.interval=2 2>&1)"
  status=$?
  if [ $status -ne 0 ] || [[ "$output" != *"stopped after step 2 on signal 15"* ]] ||
    [[ "$output" == *"step 3/"* ]] || [[ "$output" == *"val loss"* ]] ||
    [ ! -f "$tmp/$name/step_00000002/COMMIT" ]; then
    echo "FAIL: SIGTERM during a save ($name): exit $status"; echo "$output" | tail -4
    failures=$((failures + 1))
  else
    echo "ok: SIGTERM during a save ($name) stops after it"
  fi
}
signal_in_save term_in_save env MOE_FAIL_RANK=0 MOE_KILL_IN_SAVE=2 MOE_SAVE_SIGNAL=15 "$moe_train"
signal_in_save term_in_save_2 env MOE_FAIL_RANK=1 MOE_KILL_IN_SAVE=2 MOE_SAVE_SIGNAL=15 "$@" -np 2 \
  -x MOE_FAIL_RANK -x MOE_KILL_IN_SAVE -x MOE_SAVE_SIGNAL "$moe_train"

# checkpoint.resume naming an uncommitted step directory inside checkpoint.dir: the same error as
# outside it, and the directory is still there.
two=("${small[@]}" --set train.steps=2 --set checkpoint.interval=2)
expect zero "done: 2 steps" "$moe_train" "${two[@]}" --set checkpoint.dir="$tmp/uncommitted"
rm "$tmp/uncommitted/step_00000002/COMMIT"
expect nonzero "'$tmp/uncommitted/step_00000002' has no COMMIT marker" "$moe_train" "${two[@]}" \
  --set checkpoint.dir="$tmp/uncommitted" --set checkpoint.resume="$tmp/uncommitted/step_00000002"
expect zero "state.h5" ls "$tmp/uncommitted/step_00000002"

# A damaged newest checkpoint (truncated; bytes flipped in the middle of its data under 2 ranks):
# checkpoint.resume: auto warns and resumes from the one before; naming it fails.
four=("${small[@]}" --set train.steps=4 --set checkpoint.interval=2)
expect zero "done: 4 steps" "$moe_train" "${four[@]}" --set checkpoint.dir="$tmp/damaged"
state="$tmp/damaged/step_00000004/state.h5"
truncate -s $(($(stat -c %s "$state") / 2)) "$state"
expect nonzero "step_00000004/state.h5' (not an HDF5 file, or truncated?)" "$moe_train" \
  "${four[@]}" --set checkpoint.dir="$tmp/damaged" --set checkpoint.resume="$tmp/damaged/step_00000004"
fallback="$("$moe_train" "${small[@]}" --set train.steps=6 --set checkpoint.dir="$tmp/damaged" \
  --set checkpoint.interval=2 2>&1)"
if [ $? -ne 0 ] || [[ "$fallback" != *"skipping $tmp/damaged/step_00000004, which does not load"* ]] ||
  [[ "$fallback" != *"resumed from $tmp/damaged/step_00000002 at step 2"* ]] ||
  [[ "$fallback" != *"done: 4 steps"* ]]; then
  echo "FAIL: resume: auto did not fall back from a truncated checkpoint"; echo "$fallback" | tail -4
  failures=$((failures + 1))
else
  echo "ok: resume: auto skips the truncated step 4 and resumes from step 2"
fi
expect zero "done: 4 steps" "$moe_train" "${four[@]}" --set checkpoint.dir="$tmp/damaged_2"
flip() {  # overwrites 4 KiB in the middle of a file with random bytes
  dd if=/dev/urandom of="$1" bs=4096 count=1 seek=$(($(stat -c %s "$1") / 8192)) conv=notrunc \
    status=none
}
flip "$tmp/damaged_2/step_00000004/state.h5"
expect zero "resumed from $tmp/damaged_2/step_00000002 at step 2" "$@" -np 2 "$moe_train" \
  "${small[@]}" --set train.steps=6 --set checkpoint.dir="$tmp/damaged_2"
# None loads: the error names each one.
flip "$tmp/damaged_2/step_00000002/state.h5"
flip "$tmp/damaged_2/step_00000004/state.h5"
rm -r "$tmp/damaged_2/step_00000006"
expect nonzero "no committed checkpoint in '$tmp/damaged_2' loads ($tmp/damaged_2/step_00000004: " "$moe_train" "${small[@]}" --set train.steps=6 \
  --set checkpoint.dir="$tmp/damaged_2"
# A failed try leaves nothing half-loaded: an upcycled step 0 (weights only) and a step 2 whose
# bytes are flipped (every tensor, moments included, is read before the checksums fail). The
# fallback to step 0 trains exactly as a run given step 0 alone: AdamW starts from zero moments,
# not from step 2's.
"$moe_train" "${small[@]}" --set moe.first_k_dense=1 --set train.steps=2 \
  --set checkpoint.dir="$tmp/dense" > "$tmp/dense.log" 2>&1 || { echo "FAIL: dense run"; exit 1; }
upcycled=("${small[@]}" --set moe.expert_hidden=512 --set init.method=copy \
  --set init.from="$tmp/dense/step_00000002" --set train.steps=2)
"$moe_train" "${upcycled[@]}" --set checkpoint.dir="$tmp/up" > "$tmp/up.log" 2>&1 ||
  { echo "FAIL: upcycled run"; exit 1; }
mkdir "$tmp/up_ref" && cp -r "$tmp/up/step_00000000" "$tmp/up_ref/"
flip "$tmp/up/step_00000002/state.h5"
second_loss() { grep -o 'step 2/2 | loss [0-9.]*' | grep -o '[0-9.]*$'; }
fallback="$("$moe_train" "${upcycled[@]}" --set checkpoint.dir="$tmp/up" 2>&1 | second_loss)"
reference="$("$moe_train" "${upcycled[@]}" --set checkpoint.dir="$tmp/up_ref" 2>&1 | second_loss)"
if [ -z "$fallback" ] || [ "$fallback" != "$reference" ]; then
  echo "FAIL: the fallback to step 0 trained to loss '$fallback', step 0 alone to '$reference'"
  failures=$((failures + 1))
else
  echo "ok: the fallback to step 0 trains as step 0 alone (step 2 loss $fallback)"
fi

# The metrics file of a resumed run reads as one history: resumed at step 2 after a run that got
# to step 4 (an older checkpoint, or a crash after the last save), steps 3 and 4 are in it once.
metrics="$tmp/history/metrics.jsonl"
history=("$moe_train" "${small[@]}" --set train.steps=4 --set checkpoint.interval=2
  --set checkpoint.dir="$tmp/history" --set log.metrics_file="$metrics")
"${history[@]}" > /dev/null 2>&1 && "${history[@]}" \
  --set checkpoint.resume="$tmp/history/step_00000002" > /dev/null 2>&1
steps="$(python3 -c 'import json, sys
print(" ".join(str(r["step"]) for r in map(json.loads, open(sys.argv[1])) if "loss" in r))' \
  "$metrics")"
if [ "$steps" != "1 2 3 4" ]; then
  echo "FAIL: the resumed run's metrics file has the steps '$steps', not '1 2 3 4'"
  failures=$((failures + 1))
else
  echo "ok: the resumed run's metrics file has each step once"
fi
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
