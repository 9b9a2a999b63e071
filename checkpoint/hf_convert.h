// Hugging Face safetensors models <-> MoEForge checkpoints, the work behind moe-convert
// (docs/interop.md).
//
// Decisions:
// - Streaming both ways: a tensor is read (from the memory-mapped safetensors file or from one
//   hyperslab of state.h5), converted and written before the next one, so memory stays near the
//   largest tensor (a routed expert's matrix counts as one; a fused one of transformers 5 holds a
//   layer's experts and is read whole), not the model.
// - hf_tensors() (hf_model.h) is the one list of names: every source tensor must be consumed and
//   every target tensor written, or the conversion fails naming them, and nothing is published.
// - DeepSeek's multi-token prediction layers: their copies of the embedding and the LM head are
//   compared with the originals as stored (memory-mapped, nothing held) and not written again.
//   num_nextn_predict_layers with no tensor of layer num_hidden_layers in the files (transformers
//   writes DeepSeek-V3 so, without the layers it does not load) imports without multi-token
//   prediction, with a note; a partial layer is an error naming the missing tensor.
// - The expert bias (DeepSeek-V3's e_score_correction_bias) is a buffer, written under buffers/;
//   export writes it in f32 whatever --dtype says, as transformers keeps it.
// - hf_to_moeforge writes OUTPUT/step_00000000 (model tensors only: a committed checkpoint that
//   moe-eval scores and training can start from) and OUTPUT/config.yaml, the MoEForge config of the
//   model with the other settings at their defaults.
// - Both print a summary: tensors read and written and a checksum per routed expert (its three
//   matrices), the numbers to compare when an expert looks wrong.
#pragma once

#include <cstdint>
#include <string>

namespace moe {

// Returns the step directory written.
std::string hf_to_moeforge(const std::string& input, const std::string& output);
// dtype: f32, bf16 or f16; model_type "" picks one (default_hf_model_type).
void moeforge_to_hf(const std::string& input, const std::string& output, std::string model_type,
                    const std::string& dtype, int64_t max_shard_bytes);

}  // namespace moe
