// The Hugging Face architectures moe-convert reads and writes (docs/interop.md): how a config.json
// maps onto a MoEForge Config and back, and where every HF tensor goes.
//
// Decisions:
// - One list per model drives both directions: hf_tensors() names every HF tensor of a model with
//   its MoEForge place (a parameter, and for a routed expert's matrix the expert), so import and
//   export cannot disagree, and a source tensor missing from the list is an error: nothing is
//   dropped silently.
// - A feature without an equivalent on the other side (a rope type MoEForge does not implement,
//   checkpoint/hf_rope.h; biases MoEForge has no parameter for, an activation other than SiLU, MoE
//   layer patterns it cannot express, a sigmoid router or ungated shared experts on export but as
//   DeepSeek's, checkpoint/hf_deepseek.h) is
//   refused with the reason, never approximated. A sliding window shorter than the context is the
//   one exception: the imported model's max_seq_len becomes the window, within which the two are
//   the same, and a note says so.
// - transformers 5 keeps a MoE layer's routed experts as two fused tensors and can write them so
//   (save_original_format=False; docs/interop.md). hf_fused_tensors() describes each as the
//   per-expert tensors of hf_tensors() laid end to end, so an import reads it as those tensors and
//   the one list stays the one list. Only the library's own layout is accepted, [E, 2F, D] with
//   each expert's gate rows before its up rows and [E, D, F]: a transposed tensor would be refused
//   by transformers too, and with 2F = D its shape could not tell. Export writes the per-expert
//   form, which transformers 4 and 5 both load.
// - DeepSeek-V3's multi-token prediction modules (model.mtp_depth) are layers n_layers + k - 1
//   of the file, as DeepSeek numbers them: a block named as any layer of that index, enorm,
//   hnorm, eh_proj and shared_head.norm (our final_norm of the module), and copies of the main
//   model's embedding and LM head (HfTensor::copy_of), which MoEForge keeps once.
#pragma once

#include <string>
#include <vector>

#include "checkpoint/hf_rope_rows.h"
#include "config/run_config.h"

namespace moe {

// model_type values of config.json that moe-convert supports.
const std::vector<std::string>& hf_model_types();

struct HfImport {
  Config config;  // model and moe sections from config.json, the rest default
  std::string model_type;
  std::vector<std::string> notes;  // what the reader should know about the mapping
  bool rope_interleaved = false;   // the file's RoPE rows in pairs (DeepSeek; hf_rope_rows.h)
};

// Reads HF_DIR/config.json.
HfImport config_from_hf(const std::string& config_json_path);

// The architecture a MoEForge model is exported as when the user names none.
std::string default_hf_model_type(const Config& config);
// config.json of a MoEForge model written as model_type; InputError naming what HF cannot express.
std::string hf_config_json(const Config& config, const std::string& model_type,
                           const std::string& torch_dtype);

struct HfTensor {
  std::string hf_name;
  std::string parameter;  // MoEForge global name of a parameter or a buffer (the expert bias)
  int expert = -1;        // routed expert whose [F,D] or [D,F] slice it is; -1: the whole tensor
  RopeRows rope = {};     // its rows that feed RoPE (MLA)
  bool keep_f32 = false;  // written in f32 whatever the export dtype (as transformers keeps it)
  // The hf_name of the tensor this one repeats (an MTP layer's embed_tokens and shared_head.head):
  // export writes the parameter again; import checks that the file's copy, if any, equals the
  // original bit for bit.
  std::string copy_of = {};
};
std::vector<HfTensor> hf_tensors(const Config& config, const std::string& model_type);

// The name hf_tensors() gives a tensor of a model_type checkpoint. transformers 5 calls a mixtral's
// MoE block `mlp.` where 4 called it `block_sparse_moe.`, and reads both: so do we.
std::string hf_canonical_name(const std::string& name, const std::string& model_type);

// A fused tensor of one MoE layer's routed experts: the tensors `parts` (hf_tensors() names, each
// an [F, D] or [D, F] expert matrix) laid end to end make one of `shape`. gate_up_proj [E, 2F, D]
// is expert 0's gate, its up, expert 1's gate, ...; down_proj [E, D, F] each expert's down.
struct HfFusedTensor {
  std::string hf_name;
  std::vector<int64_t> shape;
  std::vector<std::string> parts;
};
std::vector<HfFusedTensor> hf_fused_tensors(const Config& config, const std::string& model_type);

}  // namespace moe
