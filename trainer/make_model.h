// The model a config describes: a decoder (layers/model.h) or, for model.kind bts, stitched frozen
// decoders (upcycling/bts_model.h), behind the one interface the trainer, evaluation and sampling
// use.
#pragma once

#include <memory>
#include <string>

#include "config/run_config.h"
#include "layers/language_model.h"
#include "layers/model_options.h"
#include "parallel/parallel_groups.h"

namespace moe {

// For model.kind bts, the config with the seed checkpoint's model and moe sections (kind stays
// bts), so that logs, checks and the saved config show the decoders' real shape. Otherwise the
// config itself. `checkpoint`: the step directory the model will be loaded from, if any (a
// self-contained BTS checkpoint's decoder copies come first).
Config resolve_model_config(const Config& config, const std::string& checkpoint = "");

// Declares the trainable parameters in `store` (the caller allocates it). For bts, groups.tp is
// the model group and groups.dp the replicas (bts_model_group_size).
std::unique_ptr<LanguageModel> make_model(const Config& config, ParameterStore& store,
                                          const ParallelGroups& groups,
                                          const std::string& checkpoint = "");

// The run settings a decoder needs (train.recompute, train.no_decay_embeddings, the fssdp section
// when parallel.experts is fssdp), with every "0 = derived" value resolved for groups.
ModelOptions model_options(const Config& config, const ParallelGroups& groups);

}  // namespace moe
