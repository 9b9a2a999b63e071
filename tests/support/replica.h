// What the parallel tests train: a layout, the tiny MoE model every layout can split, and a
// Replica (model, optimizer, loader) of it on one rank's part of a process grid.
#pragma once

#include <memory>
#include <string>

#include "parallel/process_grid.h"
#include "trainer/train_step.h"

namespace moe::testing {

constexpr int64_t kGlobalBatch = 8;  // sequences per optimizer step, over all data-parallel ranks

struct Layout {
  int tp = 1, dp = 1, ep = 1;
  bool expert_tp = false, zero = false, tied = false, fssdp = false, rematerialize = false;
  std::string name() const;
};

// 4 heads over 2 kv heads, QK-norm and QKV bias (TP partial and split biases), a shared expert
// (a TP-split MLP inside the MoE layer), vocabulary 258 (even), global-batch load balancing with
// z-loss and the expert bias (whose update must see the global loads, or ranks drift apart).
// With layout.fssdp, parallel.experts: fssdp with one copy slot per rank, owners moved every 5
// steps (and fssdp.rematerialize as the layout says).
Config layout_run(const std::string& dataset, const Layout& layout);

// c with the layout in its parallel.* keys and the per-rank micro-batch of kGlobalBatch: for code
// that builds its own groups from the config (train_model, the memory plan).
Config with_layout_keys(Config c, const Layout& layout);

// The GPL text as a dataset of this rank's own (ranks write their copies in parallel).
std::string rank_dataset(const Communicator& world, const std::string& tag);

struct Replica {
  Config config;
  ParallelGroups groups;
  ParameterStore store{DType::f32};
  std::unique_ptr<Model> model;
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<TokenLoader> loader;

  // groups {}: the single-rank reference. micro_batch_size = kGlobalBatch / dp.
  Replica(const Config& c, const ParallelGroups& g, bool zero);
  StepStats gradients(Stream& stream);
  StepStats step(int64_t step, Stream& stream);  // one optimizer step at lr 3e-3
};

}  // namespace moe::testing
