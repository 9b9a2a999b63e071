// One optimizer step (gradient accumulation over micro-batches, clipping, AdamW, the expert-bias
// update) and the statistics it produced, shared by the training loop and the benchmarks so that
// both time exactly the same work.
#pragma once

#include <cstdint>
#include <vector>

#include "data/token_loader.h"
#include "layers/model.h"
#include "trainer/optimizer.h"

namespace moe {

// Sums over micro-batches and steps: losses (each micro-batch weighted 1/grad_accum, so a step adds
// its mean), gradient norms, tokens and, per block, the expert load (empty for dense blocks).
struct StepStats {
  int64_t steps = 0, tokens = 0;
  double lm_loss = 0, aux_loss = 0, z_loss = 0, grad_norm = 0;
  std::vector<std::vector<int64_t>> loads;
  std::vector<int64_t> dropped;

  void add_micro_batch(const ModelOutput& out, int grad_accum);
  void add(const StepStats& other);
};

Tensor token_tensor(const std::vector<int32_t>& values, int64_t batch, int64_t seq_len);

// Runs optimizer step `step` (from 0) at learning rate lr. Throws InputError when the loss is not
// finite.
StepStats train_step(Model& model, AdamW& optimizer, ParameterStore& store, TokenLoader& loader,
                     const TrainConfig& train, double lr, int64_t step, Stream& stream);

}  // namespace moe
