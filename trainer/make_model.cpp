#include "trainer/make_model.h"

#include "checkpoint/checkpoint.h"
#include "layers/model.h"
#include "upcycling/bts_model.h"

namespace moe {

Config resolve_model_config(const Config& config, const std::string& checkpoint) {
  if (config.model.kind != ModelKind::bts) return config;
  const BtsDecoder hub = resolve_bts_decoders(config.bts, checkpoint).front();
  Config resolved = config;
  resolved.model = hub.config.model;
  resolved.model.kind = ModelKind::bts;
  resolved.moe = hub.config.moe;
  resolved.validate("the BTS config with the seed's model (" + hub.step_dir + ")");
  return resolved;
}

std::unique_ptr<LanguageModel> make_model(const Config& config, ParameterStore& store,
                                          const ParallelGroups& groups,
                                          const std::string& checkpoint) {
  if (config.model.kind == ModelKind::bts)
    return std::make_unique<BtsModel>(config, store, groups, checkpoint);
  return std::make_unique<Model>(config.model, config.moe, store, groups,
                                 model_options(config, groups));
}

ModelOptions model_options(const Config& config, const ParallelGroups& groups) {
  ModelOptions options;
  options.recompute = config.train.recompute;
  options.decay_embedding = !config.train.no_decay_embeddings;
  options.bf16 = config.train.precision == Precision::bf16;
  if (config.parallel.experts == ExpertPlacement::fssdp) {
    const FssdpConfig& f = config.fssdp;
    const int ranks = group_size(groups.ep);
    // Routing weighs a copy as this many rows: its three [F, D] weights (this rank's TP slice
    // with expert_tp), whose gradient comes back in f32, against a row's D elements there and
    // back in the activations' dtype (f32, or bf16: half the bytes).
    const int64_t hidden =
        config.moe.expert_hidden / (groups.expert_tp ? group_size(groups.tp) : 1);
    options.fssdp = FssdpPlacement{
        MaterializationBudget{f.slots, f.overlap > 0 ? f.overlap : config.moe.num_experts},
        f.window,
        f.ranks_per_node > 0 ? f.ranks_per_node : ranks,
        f.rematerialize,
        f.reshard_interval,
        f.calibrate,
        f.inter_node_row_cost,
        1.5 * static_cast<double>(hidden) * (options.bf16 ? 2 : 1)};
  }
  if (config.parallel.experts == ExpertPlacement::llep) {
    const LlepConfig& l = config.llep;
    FssdpPlacement placement;
    placement.least_loaded =
        LeastLoadedBudget{l.capacity_factor, l.min_tokens, l.imbalance_threshold, l.slots};
    options.fssdp = placement;
  }
  return options;
}

}  // namespace moe
