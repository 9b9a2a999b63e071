#!/usr/bin/env bash
# moe-convert through the real binaries: a Hugging Face fixture imports, exports sharded and in bf16
# (and a DeepSeek-V3 one with its multi-token prediction module, an MoE layer 2),
# and every bad input (unsupported architecture or feature, a tensor too many or missing, a wrong
# shape, a model HF cannot express) is one clear error that publishes nothing.
#   test_moe_convert.sh <moe-convert> <moe-train> <repo root>
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
convert="$1"
moe_train="$2"
root="$3"
fixtures="$root/tests/fixtures/hf"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$root"

expect zero "layers.1.moe expert 3 checksum" \
  "$convert" hf-to-moeforge --input "$fixtures/mixtral" --output "$tmp/mixtral"
expect zero "COMMIT" ls "$tmp/mixtral/step_00000000"
expect zero "num_experts: 4" cat "$tmp/mixtral/config.yaml"
expect zero "3 file(s)" "$convert" moeforge-to-hf --input "$tmp/mixtral/step_00000000" \
  --output "$tmp/mixtral_hf" --max-shard-bytes 150000
expect zero "weight_map" cat "$tmp/mixtral_hf/model.safetensors.index.json"
expect zero "BF16" "$convert" moeforge-to-hf --input "$tmp/mixtral/step_00000000" \
  --output "$tmp/mixtral_bf16" --dtype bf16
expect zero "layers.2.moe expert 7 checksum" \
  "$convert" hf-to-moeforge --input "$fixtures/deepseek_v3" --output "$tmp/deepseek"
expect zero "(deepseek_v3, F32" "$convert" moeforge-to-hf --input "$tmp/deepseek/step_00000000" \
  --output "$tmp/deepseek_hf"

# Errors: nothing is published.
mkdir -p "$tmp/gpt2" && echo '{"model_type": "gpt2"}' > "$tmp/gpt2/config.json"
expect nonzero "model_type 'gpt2' is not supported" "$convert" hf-to-moeforge --input "$tmp/gpt2" --output "$tmp/x"
cp -r "$fixtures/llama" "$tmp/scaled"
sed -i 's/"rope_scaling": null/"rope_scaling": {"type": "dynamic", "factor": 2.0}/' "$tmp/scaled/config.json"
expect nonzero "rope_scaling has rope type 'dynamic', which MoEForge does not implement (implemented: default, linear, llama3, yarn)" \
  "$convert" hf-to-moeforge --input "$tmp/scaled" --output "$tmp/x"
cp -r "$fixtures/llama" "$tmp/deeper"
sed -i 's/"num_hidden_layers": 2/"num_hidden_layers": 3/' "$tmp/deeper/config.json"
expect nonzero "tensor 'model.layers.2.input_layernorm.weight' is missing" \
  "$convert" hf-to-moeforge --input "$tmp/deeper" --output "$tmp/x"
cp -r "$fixtures/llama" "$tmp/wider"
sed -i 's/"intermediate_size": 80/"intermediate_size": 96/' "$tmp/wider/config.json"
expect nonzero "tensor 'model.layers.0.mlp.down_proj.weight' has shape [64, 80], but config.json makes layers.0.mlp.w_down [64, 96]" \
  "$convert" hf-to-moeforge --input "$tmp/wider" --output "$tmp/x"
cp -r "$fixtures/qwen2" "$tmp/qwen2_as_llama"
sed -i 's/"model_type": "qwen2"/"model_type": "llama"/' "$tmp/qwen2_as_llama/config.json"
expect nonzero "not consumed" "$convert" hf-to-moeforge --input "$tmp/qwen2_as_llama" --output "$tmp/x"
expect nonzero "No such file" ls "$tmp/x/step_00000000"
expect nonzero "No such file" ls "$tmp/x/step_00000000.tmp"
expect nonzero "cannot export a model exported as llama: it has MoE layers" \
  "$convert" moeforge-to-hf --input "$tmp/mixtral/step_00000000" --output "$tmp/y" --model-type llama
"$moe_train" --config configs/quickstart.yaml --set train.steps=1 --set train.warmup_steps=1 \
  --set model.n_layers=1 --set moe.router_score=sigmoid --set train.eval_batches=1 \
  --set checkpoint.dir="$tmp/sigmoid" > /dev/null 2>&1
expect nonzero "a sigmoid router" "$convert" moeforge-to-hf --input "$tmp/sigmoid/step_00000001" --output "$tmp/y"
expect nonzero "is not a committed checkpoint" "$convert" moeforge-to-hf --input "$tmp/nowhere" --output "$tmp/y"
[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
