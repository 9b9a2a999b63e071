// One optimizer step (gradient accumulation over micro-batches, data-parallel averaging, clipping,
// AdamW, the expert-bias update) and the statistics it produced, shared by the training loop, the
// benchmarks and the parallel tests so that all of them run exactly the same work.
//
// Data parallelism: every rank computes the gradient of the mean loss over its own slice of the
// global batch; gradient_sync.h turns those into the gradient of the mean over the global batch
// (exact when every rank holds the same number of target tokens). Losses and expert loads are
// summed over the data-parallel group too, so every rank logs global numbers and moves the expert
// bias identically; TP ranks compute them identically from the same tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "data/token_loader.h"
#include "layers/model.h"
#include "parallel/parallel_groups.h"
#include "trainer/optimizer.h"

namespace moe {

// Sums over micro-batches and steps: losses (each micro-batch weighted 1/grad_accum, so a step adds
// its mean), gradient norms, tokens and, per block, the expert load (empty for dense blocks).
struct StepStats {
  int64_t steps = 0, tokens = 0;
  int64_t skipped = 0;  // steps whose loss or gradient norm was not finite: no update was made
  double lm_loss = 0, aux_loss = 0, z_loss = 0, mtp_loss = 0, grad_norm = 0;
  std::vector<std::vector<int64_t>> loads;
  std::vector<int64_t> dropped;
  std::vector<int64_t> expert_rows;  // per block: rows this rank's experts processed (not summed)
  // FSSDP, per MoE layer: expert copies beyond the owners, the mean over the step's forwards'
  // plans (the same on every rank, so not summed over ranks).
  std::vector<double> fssdp_copies;

  void add_micro_batch(const ModelOutput& out, int grad_accum);
  void add(const StepStats& other);
};

Tensor token_tensor(const std::vector<int32_t>& values, int64_t batch, int64_t seq_len);

// Zeroes the gradients, runs forward and backward over train.grad_accum micro-batches, sums the
// TP-partial gradients, and averages losses and loads, and (when average) the gradients, over the
// data-parallel groups. A ZeRO-1 optimizer averages the gradients itself, by reduce-scatter.
StepStats accumulate_gradients(LanguageModel& model, ParameterStore& store, TokenLoader& loader,
                               const TrainConfig& train, const ParallelGroups& groups, bool average,
                               Stream& stream);

// accumulate_gradients, then the optimizer step at learning rate lr, the end of the step (expert
// bias, FSSDP's load history) and, when fssdp.reshard_interval says so, FSSDP's owner moves. A
// step whose loss (the same on every rank once averaged) or gradient norm is not finite makes no
// update and counts as skipped; the caller decides how many in a row are too many.
StepStats train_step(LanguageModel& model, AdamW& optimizer, ParameterStore& store,
                     TokenLoader& loader, const TrainConfig& train, const ParallelGroups& groups,
                     double lr, int64_t step, Stream& stream);

}  // namespace moe
