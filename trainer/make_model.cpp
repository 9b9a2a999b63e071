#include "trainer/make_model.h"

#include "checkpoint/checkpoint.h"
#include "layers/model.h"
#include "upcycling/bts_model.h"

namespace moe {

Config resolve_model_config(const Config& config, const std::string& checkpoint) {
  if (config.model.kind != "bts") return config;
  const BtsDecoder hub = resolve_bts_decoders(config.bts, checkpoint).front();
  Config resolved = config;
  resolved.model = hub.config.model;
  resolved.model.kind = "bts";
  resolved.moe = hub.config.moe;
  resolved.validate("the BTS config with the seed's model (" + hub.step_dir + ")");
  return resolved;
}

std::unique_ptr<LanguageModel> make_model(const Config& config, ParameterStore& store,
                                          const ParallelGroups& groups,
                                          const std::string& checkpoint) {
  if (config.model.kind == "bts")
    return std::make_unique<BtsModel>(config, store, groups, checkpoint);
  return std::make_unique<Model>(config, store, groups);
}

}  // namespace moe
