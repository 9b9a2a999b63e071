// DeepSeek-V2 and -V3 in a Hugging Face config.json (model_type deepseek_v2, deepseek_v3): the
// multi-head latent attention and routing keys, read into a MoEForge Config and written back
// (METHODS.md §7.3-7.5; docs/interop.md).
//
// Decisions:
// - transformers is the reference: where it ignores a key DeepSeek's own code reads
//   (scoring_func, topk_method of V3, moe_layer_freq, V2's norm_topk_prob), a value that would make
//   the two disagree is refused naming the key; the values transformers' behaviour matches are
//   accepted.
// - deepseek_v3 is MLA with sigmoid scores, group-limited choice and the correction bias (our
//   expert bias); deepseek_v2 is MLA with softmax scores and greedy top-k, unrenormalized. V2's
//   group_limited_greedy ranks groups by their best score where MoEForge sums the two best:
//   refused.
// - V3's num_nextn_predict_layers is model.mtp_depth both ways (the modules' tensors:
//   hf_model.h); transformers has no key for model.mtp_loss_weight, which import leaves at its
//   default. deepseek_v2 has no multi-token prediction.
// - RoPE rows: transformers reads DeepSeek weights in interleaved pairs unless rope_interleave is
//   false (V3; V2 always interleaves); export always writes them interleaved, as DeepSeek's are
//   (checkpoint/hf_rope_rows.h).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "checkpoint/hf_model.h"
#include "formats/json.h"

namespace moe {

bool is_deepseek(const std::string& model_type);

// Sets the attention and MoE keys of out.config (whose model keys common to every type are read),
// out.rope_interleaved and model.mtp_depth from config.json's root at `path`.
void deepseek_from_hf(const JsonNode& root, const std::string& path, HfImport& out);

// The DeepSeek keys of config.json for `config`, as (key, JSON value); InputError naming what
// model_type cannot express.
std::vector<std::pair<std::string, std::string>> deepseek_to_hf(const Config& config,
                                                                const std::string& model_type);

}  // namespace moe
