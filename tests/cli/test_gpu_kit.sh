#!/usr/bin/env bash
# tools/gpu_kit.sh without a CUDA build: its argument errors, selftest on a tiny fake kit (a
# library missing from the kit is named, the size limit holds, run stops where it needs a GPU),
# and a whole run against a fake GPU whose programs print canned logs, so the summary's figures
# (step time, MFU, memory, test counts, reference JSON) are checked against hand computations.
# The real kit (pack, selftest, rehearse) needs a CUDA build and is run by hand (docs/gpu.md).
#   test_gpu_kit.sh <repo root>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
MOE_ROOT="$1"
kit_sh="$MOE_ROOT/tools/gpu_kit.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

expect nonzero "pack DIR" "$kit_sh"
expect nonzero "pack DIR" "$kit_sh" unpack "$work"
expect nonzero "run DIR OUT" "$kit_sh" run "$work"
expect nonzero "not found" "$kit_sh" run "$work/none" "$work/out"
expect nonzero "pack $work" "$kit_sh" selftest "$work"

# A fake kit: one real program (xz, which loads liblzma) and scripts standing in for the rest:
# moe-train prints 1.5e+09 FLOPs per token, 8192 tokens a step and 100000 tok/s in its last
# interval, so on the fake H100 a step takes 81.92 ms and MFU is 1.5e9 * 1e5 / 989e12 = 15.2 %;
# of the two tests one passes, one fails; the reference writes its JSON.
root="$work/stage/moe-kit"
mkdir -p "$root"/{bin,lib,ompi/bin,pmix}
cp "$(command -v xz)" "$root/bin/xz"
echo "fake kit; uncompressed: 1M" > "$root/kit.txt"
pack_fake() { mkdir -p "$work/kit"; tar -C "$work/stage" -cJf "$work/kit/moe-kit.tar.xz" moe-kit; }
cat > "$work/nvidia-smi" <<'EOF'
#!/bin/sh
case "$1" in
  -L) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)" ;;
  --query-gpu=*) echo "name, driver_version"; echo "NVIDIA H100 80GB HBM3, 580.0" ;;
  *) echo "fake nvidia-smi" ;;
esac
EOF
cat > "$root/bin/moe-data" <<'EOF'
#!/bin/sh
echo "fake moe-data $*"
EOF
cat > "$root/bin/moe-train" <<'EOF'
#!/bin/sh
echo "model: 1 parameters (0 in the embedding), 1 active per token; 1.5e+09 training FLOPs per token at seq_len 1024"
echo "data: x; 20 steps of 8192 tokens (8 x 1024 x 1 micro-batches x 1 data-parallel ranks)"
echo "step 10/20 | loss 5.0 | 50000 tok/s | 00:02 elapsed"
echo "step 20/20 | loss 4.0 | 100000 tok/s | 00:03 elapsed"
echo "done: 20 steps in 00:03 (90000 tok/s overall, evaluation included); final train loss 4.0; peak memory 100 MB, cuda:0 peak 5000 MB in use, 6000 MB reserved; run 00:04"
EOF
cat > "$root/bin/fake_test" <<'EOF'
#!/bin/sh
echo "[  PASSED  ] 3 tests."
[ "$1" = pass ] && exit 0
echo "[  FAILED  ] 1 test, listed below:"
echo "[  FAILED  ] Suite.Broken"
exit 1
EOF
cat > "$work/reference.py" <<'EOF'
import json, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
json.dump({"tokens_per_s": 123.0, "mode": args["--mode"]}, open(args["--json"], "w"))
EOF
chmod +x "$work/nvidia-smi" "$root"/bin/*
printf 'good\t600\tA=1\t@KIT@/bin/fake_test pass\nbad\t600\t-\t@KIT@/bin/fake_test fail\n' \
  > "$root/tests.tsv"

lzma="$(ldd "$root/bin/xz" | awk '$1 ~ /^liblzma/ {print $1, $3}')"
pack_fake
expect nonzero "${lzma%% *}" "$kit_sh" selftest "$work/kit"
cp "$(readlink -f "${lzma#* }")" "$root/lib/${lzma%% *}"
pack_fake
expect zero "selftest passed" "$kit_sh" selftest "$work/kit"
mv "$root/bin/fake_test" "$work/fake_test"
pack_fake
expect nonzero "programs: fake_test" "$kit_sh" selftest "$work/kit"
mv "$work/fake_test" "$root/bin/fake_test"
pack_fake
expect nonzero "over 0 MiB" env MOE_KIT_LIMIT_MIB=0 "$kit_sh" selftest "$work/kit"
expect nonzero "stopped: no GPU here" env MOE_KIT_SMI=/nonexistent "$kit_sh" run "$work/kit" "$work/out0"
grep -q "stopped: no GPU here" "$work/out0/summary.md" || fail "no summary after the GPU stop"

expect zero "status: finished" env MOE_KIT_SMI="$work/nvidia-smi" MOE_KIT_REFERENCE="$work/reference.py" \
  "$kit_sh" run "$work/kit" "$work/out"
summary="$work/out/summary.md"
grep -q "NVIDIA H100 80GB HBM3" "$summary" || fail "no device name in the summary"
grep -qF "| good | ok" "$summary" || fail "test 'good' not ok"
grep -qF "3 passed, 0 skipped, 0 failed |" "$summary" || fail "counts of 'good'"
grep -qF "| bad | FAILED (rc 1" "$summary" || fail "test 'bad' not FAILED"
grep -qF "3 passed, 0 skipped, 1 failed: Suite.Broken" "$summary" || fail "counts of 'bad'"
for model in dense-125m mixtral-style fine-grained; do
  for precision in bf16 f32; do
    grep -qE "^\| $model \| $precision \| ok \([0-9]+ s\) \| 20/20 \| 100000 \| 81\.9 \| 15\.2% \| 100 MB, cuda:0 peak 5000 MB in use, 6000 MB reserved \|$" \
      "$summary" || fail "training row of $model $precision"
  done
  grep -qE "^\| $model \| bf16 \| compile \| ok \([0-9]+ s\) \| tokens_per_s 123, mode compile \|$" "$summary" ||
    fail "reference row of $model"
done
[ "$(ls "$work/out" | wc -l)" -le 8 ] || fail "more than 8 files in OUT: $(ls "$work/out")"
[ "$failures" -eq 0 ] || { cat "$summary"; echo "$failures failure(s)"; exit 1; }
echo "all gpu_kit checks passed"
