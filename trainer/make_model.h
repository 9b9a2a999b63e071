// The model a config describes: a decoder (layers/model.h) or, for model.kind bts, stitched frozen
// decoders (upcycling/bts_model.h), behind the one interface the trainer, evaluation and sampling
// use.
#pragma once

#include <memory>

#include "layers/language_model.h"
#include "parallel/parallel_groups.h"
#include "trainer/config.h"

namespace moe {

// For model.kind bts, the config with the seed checkpoint's model and moe sections (kind stays
// bts), so that logs, checks and the saved config show the decoders' real shape. Otherwise the
// config itself.
Config resolve_model_config(const Config& config);

// Declares the trainable parameters in `store` (the caller allocates it). For bts, groups.tp is
// the model group and groups.dp the replicas (bts_model_group_size).
std::unique_ptr<LanguageModel> make_model(const Config& config, ParameterStore& store,
                                          const ParallelGroups& groups);

}  // namespace moe
