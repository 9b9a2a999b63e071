#include "tests/support/replica.h"

#include <gtest/gtest.h>

#include "tests/support/text_dataset.h"
#include "tests/support/tiny_run.h"
#include "trainer/make_model.h"

namespace moe::testing {

std::string Layout::name() const {
  return "tp" + std::to_string(tp) + " dp" + std::to_string(dp) + " ep" + std::to_string(ep) +
         (expert_tp ? " expert_tp" : "") + (zero ? " zero1" : "") + (tied ? " tied" : "") +
         (fssdp ? " fssdp" : "") + (rematerialize ? " rematerialize" : "");
}

Config layout_run(const std::string& dataset, const Layout& layout) {
  Config c = tiny_run(dataset);
  c.model.n_heads = 4;
  c.model.n_kv_heads = 2;
  c.model.vocab_size = 258;
  c.model.qk_norm = true;
  c.model.qkv_bias = true;
  c.model.tie_embeddings = layout.tied;
  c.moe.shared_experts = 1;
  c.moe.shared_expert_hidden = 32;
  c.moe.aux_loss_type = AuxLossType::global_batch;
  c.moe.expert_bias = true;
  c.moe.z_loss_coeff = 1e-3;
  c.data.val_fraction = 0;
  if (layout.fssdp) {
    c.parallel.experts = ExpertPlacement::fssdp;
    c.fssdp.slots = 1;
    c.fssdp.rematerialize = layout.rematerialize;
    c.fssdp.reshard_interval = 5;
  }
  return c;
}

Config with_layout_keys(Config c, const Layout& layout) {
  c.parallel.tp = layout.tp;
  c.parallel.dp = layout.dp;
  c.parallel.ep = layout.ep;
  c.parallel.expert_tp = layout.expert_tp;
  c.parallel.zero = layout.zero ? 1 : 0;
  c.train.micro_batch_size = static_cast<int>(kGlobalBatch / layout.dp);
  return c;
}

std::string rank_dataset(const Communicator& world, const std::string& tag) {
  return write_text_dataset(
      "/usr/share/common-licenses/GPL-3",
      ::testing::TempDir() + "moe_" + tag + "_rank" + std::to_string(world.rank()) + "/gpl");
}

Replica::Replica(const Config& c, const ParallelGroups& g, bool zero) : config(c), groups(g) {
  const int dp = group_size(groups.dp);
  config.train.micro_batch_size = static_cast<int>(kGlobalBatch / dp);
  model = std::make_unique<Model>(config.model, config.moe, store, groups,
                                  model_options(config, groups));
  store.allocate(1);
  optimizer = std::make_unique<AdamW>(store, config.train, groups, zero,
                                      config.parallel.experts != ExpertPlacement::ep);
  loader = make_token_loader(config.data, group_rank(groups.dp), dp);
}

StepStats Replica::gradients(Stream& stream) {
  return accumulate_gradients(*model, store, *loader, config.train, groups, true, stream);
}

StepStats Replica::step(int64_t step, Stream& stream) {
  return train_step(*model, *optimizer, store, *loader, config.train, groups, 3e-3, step, stream);
}

}  // namespace moe::testing
