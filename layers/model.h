// The decoder language model: token embedding, blocks, final RMSNorm, LM head (tied to the
// embedding or its own), mean cross-entropy over the tokens, plus the MoE layers' auxiliary losses.
//
// Decisions:
// - The model owns the activations between forward and backward (one micro-batch at a time), so
//   the training loop reads as forward(); backward(); and evaluation passes keep_for_backward =
//   false to drop each block's activations as soon as the next block has its input.
// - The objective is lm_loss + aux_loss_coeff * sum(aux) + z_loss_coeff * sum(z) over MoE layers;
//   backward(loss_scale) adds loss_scale times its gradient to the parameter gradients, which is
//   how gradient accumulation averages micro-batches.
// - Tensor parallel (Megatron): the embedding is vocab parallel (each TP rank holds vocab/tp rows
//   and the lookups are all-reduced) and so is the LM head (tied or not), with the cross-entropy
//   computed over the vocabulary shards: each rank's logsumexp is all-gathered and combined, and
//   the target logits are all-reduced; the full logits never exist on one rank during training.
#pragma once

#include <memory>
#include <vector>

#include "layers/block.h"

namespace moe {

struct ModelOutput {
  double lm_loss = 0;   // mean cross-entropy per target token
  double aux_loss = 0;  // sum over MoE layers, before the coefficient
  double z_loss = 0;    // sum over MoE layers, before the coefficient
  double total = 0;     // the objective backward differentiates
  Tensor logits;        // [B*T, V/tp]: this rank's vocabulary shard (full_logits gathers it)
  std::vector<BlockStats> layers;
};

struct ParameterCounts {
  int64_t total = 0;
  int64_t active_per_token = 0;  // routed experts counted k of E
  int64_t embedding = 0;
};

class Model {
 public:
  Model(const Config& config, ParameterStore& store, const ParallelGroups& groups = {});

  // inputs, targets: i32 [B,T]; targets equal to ignore_index do not count.
  ModelOutput forward(const Tensor& inputs, const Tensor& targets, bool keep_for_backward,
                      Stream& stream);
  void backward(double loss_scale, Stream& stream);
  // Starts an optimizer step (the global-batch load-balancing counts start over); dp_group (may be
  // null) is the data-parallel group they are summed over.
  void begin_step(Communicator* dp_group) const;
  // Applies the aux-loss-free expert bias update from per-layer loads (one entry per block; empty
  // for dense blocks).
  void update_expert_bias(const std::vector<std::vector<int64_t>>& loads) const;

  // The whole vocabulary's logits [N, V] from ModelOutput::logits (an all-gather over TP, so
  // every TP rank must call it).
  Tensor full_logits(const Tensor& shard, Stream& stream) const;

  ParameterCounts parameter_counts() const;
  // Training FLOPs per token: 6 per active matmul weight plus causal attention at seq_len.
  double flops_per_token(int64_t seq_len) const;
  static constexpr int ignore_index = -100;

 private:
  const Config& config_;
  ParameterStore& store_;
  Communicator* tp_;
  int64_t vocab_shard_, vocab_start_;  // this rank's vocabulary rows [start, start + shard)
  Parameter& embedding_;
  std::vector<std::unique_ptr<Block>> blocks_;
  Parameter& final_norm_;
  std::unique_ptr<Linear> lm_head_;  // null when tied

  struct Saved {
    Tensor inputs, targets, positions;
    int64_t batch = 0;
    std::vector<BlockSaved> blocks;
    Tensor final_in, final_rstd, normed, logits, lse;
    int64_t counted_targets = 0;
  } saved_;
};

}  // namespace moe
