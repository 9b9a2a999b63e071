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
// - Multi-token prediction (model.mtp_depth = D, DeepSeek-V3): module k (layer n_layers + k - 1)
//   joins the embedding of the token k ahead with the previous depth's hidden states, h^0 being
//   the main model's final-normed output (as transformers feeds its MTP module), runs one more
//   block, and its own final norm and the shared LM head predict the token k + 1 ahead. The ids
//   and targets are shifted left by k within each sequence (the tail: id 0, ignored target); the
//   objective adds mtp_loss_weight times the mean of the D cross-entropies. Its blocks follow the
//   main ones in the block list, so statistics, expert-bias updates and FSSDP cover them.
#pragma once

#include <memory>
#include <vector>

#include "layers/block.h"
#include "layers/language_model.h"
#include "layers/model_options.h"
#include "layers/mtp_input.h"

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
  int num_blocks() const { return model_.n_layers; }  // the main blocks (MTP's follow them)
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
  std::vector<std::unique_ptr<Block>> blocks_;  // n_layers main blocks, then mtp_depth MTP ones
  Parameter& final_norm_;
  std::unique_ptr<Linear> lm_head_;  // null when tied
  std::vector<std::unique_ptr<MtpInput>> mtp_inputs_;
  std::vector<Parameter*> mtp_norms_;  // each MTP module's final norm

  // A final norm, the LM head and the cross-entropy: the model's, or an MTP module's.
  struct HeadSaved {
    Tensor targets, host_targets;  // where the model lives; on the host, to count them
    Tensor in, rstd, normed, logits, lse;
    int64_t counted_targets = 0;
  };
  struct MtpSaved {
    Tensor ids;  // the tokens k ahead, where the model lives
    MtpInputSaved input;
    HeadSaved head;
  };
  struct Saved {
    Tensor inputs, positions;  // where the model lives
    int64_t batch = 0;
    std::vector<BlockSaved> blocks;
    std::vector<BlockStats> stats;
    HeadSaved head;
    std::vector<MtpSaved> mtp;
  } saved_;

  // The token embedding of ids (all-reduced over TP).
  Tensor embed(const Tensor& ids, Stream& stream) const;
  // The mean cross-entropy of head.targets from x through norm and the LM head.
  double head_forward(const Tensor& x, const Parameter& norm, HeadSaved& head,
                      Stream& stream) const;
  // The gradient at the head's input of scale times its mean cross-entropy, with extra_dnormed
  // (if defined) added at its normed output.
  Tensor head_backward(const HeadSaved& head, const Parameter& norm, double scale,
                       const Tensor& extra_dnormed, Stream& stream) const;
  // The MTP modules from the main head's normed output: the mean of their cross-entropies.
  double mtp_forward(bool keep_for_backward, Stream& stream);
  // Their backward: the gradient they send to the main head's normed output (undefined if none).
  Tensor mtp_backward(double loss_scale, Stream& stream);
};

}  // namespace moe
