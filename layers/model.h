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
// - The model keeps its own copies of its shape (ModelConfig, MoeConfig) and run options
//   (layers/model_options.h): nothing refers back into the run config.
// - With FSSDP placement, the model keeps the FSSDP coordinator its MoE layers share (which rank
//   owns which expert, this step's copies), planned at begin_step from the loads end_step records.
// - Mixed precision (options.bf16): activations and the weights' compute copies are bf16; the
//   RMSNorm and attention statistics, the router and the LM-head logits with the cross-entropy are
//   f32 (accumulation_dtype), and dlogits is rounded to bf16 for the backward GEMMs.
// - Tensor parallel (Megatron): the embedding is vocab parallel (each TP rank holds vocab/tp rows
//   and the lookups are all-reduced) and so is the LM head (tied or not), with the cross-entropy
//   computed over the vocabulary shards: each rank's logsumexp is all-gathered and combined, and
//   the target logits are all-reduced; the full logits never exist on one rank during training.
#pragma once

#include <memory>
#include <vector>

#include "layers/block.h"
#include "layers/language_model.h"
#include "layers/model_options.h"

namespace moe {

class Model : public LanguageModel {
 public:
  Model(ModelConfig model, MoeConfig moe, ParameterStore& store, const ParallelGroups& groups = {},
        ModelOptions options = {});

  // inputs, targets: i32 [B,T]; targets equal to ignore_index do not count.
  ModelOutput forward(const Tensor& inputs, const Tensor& targets, bool keep_for_backward,
                      Stream& stream) override;
  void backward(double loss_scale, Stream& stream) override;

  // forward and backward in stages, for models that run several decoders in lock-step (BTS):
  // begin_forward checks and embeds the batch, forward_blocks runs blocks [begin, end) and
  // finish_forward the final norm, LM head and loss; begin_backward returns the gradient at the
  // last block's output, backward_blocks carries a gradient from block end's input down to block
  // begin's, finish_backward ends in the embedding. Backward may stop at any block whose
  // activations were kept.
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  Tensor begin_forward(const Tensor& inputs, const Tensor& targets, Stream& stream);
  Tensor forward_blocks(int begin, int end, const Tensor& x, bool keep_for_backward,
                        Stream& stream);
  ModelOutput finish_forward(const Tensor& x, bool keep_for_backward, Stream& stream);
  Tensor begin_backward(double loss_scale, Stream& stream);
  Tensor backward_blocks(int begin, int end, const Tensor& dout, double loss_scale, Stream& stream);
  void finish_backward(const Tensor& dx, Stream& stream);
  // Starts an optimizer step (the global-batch load-balancing counts start over, FSSDP plans its
  // copies); dp_group (may be null) is the data-parallel group the counts are summed over.
  void begin_step(Communicator* dp_group) const override;
  // The aux-loss-free expert bias update and FSSDP's load history, from the step's global loads
  // (one entry per block; empty for dense blocks).
  void end_step(const std::vector<std::vector<int64_t>>& loads) const override;

  // The whole vocabulary's logits [N, V] from ModelOutput::logits (an all-gather over TP, so
  // every TP rank must call it).
  Tensor full_logits(const Tensor& shard, Stream& stream) const override;

  ParameterCounts parameter_counts() const override;
  FssdpCoordinator* fssdp() const override { return fssdp_.get(); }
  std::vector<std::vector<Parameter*>> fssdp_parameters() const override;
  // Training FLOPs per token: 6 per active matmul weight plus causal attention at seq_len.
  double flops_per_token(int64_t seq_len) const override;

 private:
  ModelConfig model_;
  MoeConfig moe_;
  ModelOptions options_;
  ParameterStore& store_;
  Communicator* tp_;
  std::unique_ptr<FssdpCoordinator> fssdp_;  // parallel.experts: fssdp
  int64_t vocab_shard_, vocab_start_;        // this rank's vocabulary rows [start, start + shard)
  Parameter& embedding_;
  std::vector<std::unique_ptr<Block>> blocks_;
  Parameter& final_norm_;
  std::unique_ptr<Linear> lm_head_;  // null when tied

  struct Saved {
    Tensor inputs, targets, positions;  // where the model lives
    Tensor host_targets;                // to count the loss's targets on the host
    int64_t batch = 0;
    std::vector<BlockSaved> blocks;
    std::vector<BlockStats> stats;
    Tensor final_in, final_rstd, normed, logits, lse;
    int64_t counted_targets = 0;
  } saved_;
};

}  // namespace moe
