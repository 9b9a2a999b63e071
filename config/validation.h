// The constraints between keys, one function per concern; Config::validate() runs the per-key
// rules first, then these. `where` names the source in messages ("run.yaml with --set ...").
#pragma once

#include <string>

#include "config/run_config.h"

namespace moe {

// model.* and moe.*: the decoder's and the experts' shapes fit together.
void validate_model_shape(const Config& config, const std::string& where);
// rope_scaling.*: the numbers the chosen type needs.
void validate_rope_scaling(const Config& config, const std::string& where);
// parallel.* and fssdp.*: the layout divides what it splits.
void validate_parallel_layout(const Config& config, const std::string& where);
// model.kind bts and the bts section.
void validate_bts(const Config& config, const std::string& where);
// data.*, train.* and init.*.
void validate_training(const Config& config, const std::string& where);

}  // namespace moe
