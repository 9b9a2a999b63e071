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
//   layer patterns it cannot express, a sigmoid router or ungated shared experts on export) is
//   refused with the reason, never approximated. A sliding window shorter than the context is the
//   one exception: the imported model's max_seq_len becomes the window, within which the two are
//   the same, and a note says so.
#pragma once

#include <string>
#include <vector>

#include "config/run_config.h"

namespace moe {

// model_type values of config.json that moe-convert supports.
const std::vector<std::string>& hf_model_types();

struct HfImport {
  Config config;  // model and moe sections from config.json, the rest default
  std::string model_type;
  std::vector<std::string> notes;  // what the reader should know about the mapping
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
  std::string parameter;  // MoEForge global name
  int expert = -1;        // routed expert whose [F,D] or [D,F] slice it is; -1: the whole tensor
};
std::vector<HfTensor> hf_tensors(const Config& config, const std::string& model_type);

}  // namespace moe
