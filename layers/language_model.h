// What the trainer, evaluation and sampling need of a model: a decoder (layers/model.h) or a
// model stitched together from several (upcycling/bts_model.h). One micro-batch at a time, with
// the model holding its activations between forward and backward.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "layers/block.h"

namespace moe {

struct ModelOutput {
  double lm_loss = 0;   // mean cross-entropy per target token
  double aux_loss = 0;  // sum over MoE layers, before the coefficient
  double z_loss = 0;    // sum over MoE layers, before the coefficient
  double mtp_loss = 0;  // mean over the multi-token prediction modules of their cross-entropies
  double total = 0;     // the objective backward differentiates
  Tensor logits;        // [B*T, V/tp]: this rank's vocabulary shard (full_logits gathers it)
  std::vector<BlockStats> layers;
};

struct ParameterCounts {
  int64_t total = 0;
  int64_t active_per_token = 0;  // routed experts counted k of E
  int64_t embedding = 0;
  int64_t trainable = 0;  // less than total when parts are frozen
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;

  // inputs, targets: i32 [B,T]; targets equal to ignore_index do not count.
  virtual ModelOutput forward(const Tensor& inputs, const Tensor& targets, bool keep_for_backward,
                              Stream& stream) = 0;
  // Adds loss_scale times the objective's gradient to the trainable parameters' gradients.
  virtual void backward(double loss_scale, Stream& stream) = 0;
  // Starts an optimizer step (the global-batch load-balancing counts start over); dp_group (may
  // be null) is the data-parallel group they are summed over.
  virtual void begin_step(Communicator* dp_group) const = 0;
  // Ends an optimizer step with its per-layer expert loads summed over all data-parallel ranks (one
  // entry per block of ModelOutput::layers; empty for dense blocks): the aux-loss-free expert bias
  // update, FSSDP's load history.
  virtual void end_step(const std::vector<std::vector<int64_t>>& loads) const = 0;
  // The whole vocabulary's logits [N, V] from ModelOutput::logits, on the host; collective.
  virtual Tensor full_logits(const Tensor& shard, Stream& stream) const = 0;
  virtual ParameterCounts parameter_counts() const = 0;
  // Training FLOPs per token at seq_len.
  virtual double flops_per_token(int64_t seq_len) const = 0;
  // parallel.experts: fssdp's coordinator and, per MoE layer, the experts' stacked weights it
  // places (null and empty otherwise).
  virtual FssdpCoordinator* fssdp() const { return nullptr; }
  virtual std::vector<std::vector<Parameter*>> fssdp_parameters() const { return {}; }
  // Committed checkpoints its checkpoints carry along, by path inside the step directory
  // (CheckpointMeta::attachments).
  virtual std::map<std::string, std::string> checkpoint_attachments() const { return {}; }

  static constexpr int ignore_index = -100;
};

}  // namespace moe
