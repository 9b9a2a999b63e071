// RoPE in a Hugging Face config.json: rope_theta and the frequency scaling, read from transformers
// 5's rope_parameters (which holds rope_theta) or transformers 4's rope_scaling (type under
// rope_type, or the older type) beside a top-level rope_theta; written back in the transformers 4
// form, which both versions read.
//
// Decisions:
// - Import resolves what transformers derives (original_max_position_embeddings defaults to
//   max_position_embeddings for llama3 and yarn; a yarn factor of null is max_position_embeddings /
//   original), so the model config says exactly what the model computes.
// - A rope type MoEForge does not implement (dynamic, longrope, ...), a partial rotary factor,
//   rope parameters per layer type and yarn's truncate = false are refused by name, never
//   approximated.
#pragma once

#include <string>

#include "config/model_config.h"
#include "formats/json.h"

namespace moe {

// Sets model.rope_theta and model.rope_scaling from config.json's root; needs model.max_seq_len
// (max_position_embeddings) set.
void rope_from_hf(const JsonNode& root, ModelConfig& model);

// The config.json members "rope_theta": ..., "rope_scaling": ... (null when unscaled), without
// braces, each line indented by two spaces and ended by ",\n".
std::string rope_to_hf(const ModelConfig& model);

// A JSON number that Python reads back as a float: shortest round trip, with a '.'.
std::string json_float(double x);

}  // namespace moe
