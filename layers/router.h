// The MoE router: logits = x Wr^T (no bias), scores (softmax or sigmoid), top-k gates, and the
// losses that act on it (METHODS.md §5).
//
// Decisions:
// - Load-balancing loss L = E * sum_i f_i * P_i per group of tokens (the micro-batch, or each
//   sequence), averaged over groups. P_i is the mean score of expert i over the group and carries
//   the gradient (sigmoid scores are first divided by their token's sum, as DeepSeek-V3's
//   sequence-wise loss and Megatron do, so that P sums to 1 like softmax scores); f_i comes from
//   counts (AuxCounts) that are an input of their own. Normalizations (moe.aux_loss_norm): megatron
//   f_i = count_i / (T k) and switch f_i = first-choice count_i / T, both 1 when balanced; hf f_i =
//   count_i / T, k when balanced.
// - Global batch (METHODS.md §5.3): the counts are summed over the data-parallel group (T counts
//   every rank's tokens) and averaged over the micro-batches of the optimizer step so far, while
//   P_i stays local; the mean of the ranks' losses is then the loss of the whole global batch. Only
//   training forwards enter the step's buffer; evaluation uses its own micro-batch counts.
// - z-loss = mean over tokens of logsumexp(logits)^2.
// - Both reach the logits through router_topk_backward's dscores input and logsumexp's backward,
//   scaled by their coefficient and the caller's loss scale.
// - The expert bias (aux-loss-free balancing) is a buffer: it ranks experts, never weights them,
//   and moves by rate * sign(mean load - load) after each optimizer step.
// - moe.router_skew (for benchmarks of unbalanced routing) is a fixed selection bias of the same
//   kind, falling linearly from skew / E for expert 0 to 0 for the last.
// - Mixed precision: the router runs in the parameters' own dtype (f32) on a widened copy of bf16
//   activations, with the f32 master weight, as Megatron's fp32 router: logits, scores, gates and
//   both losses in f32. Its share of dx is rounded to bf16 once before it joins dx.
// - Group-limited routing (moe.n_group, moe.topk_group; METHODS.md §7.4): the choice, made by
//   router_topk_forward, looks only at the experts of the best groups; the gates and the losses
//   are as without it.
// - With renormalization, softmax-then-top-k equals top-k-then-softmax (Mixtral); without it, gates
//   are the raw softmax scores (Megatron's pre-softmax top-k).
#pragma once

#include <string>
#include <vector>

#include "config/model_config.h"
#include "kernels/op_types.h"
#include "layers/linear.h"
#include "parallel/communicator.h"

namespace moe {

// What f_i is computed from: counts[G,E] (f64: global-batch counts are averages) and the number of
// tokens T per group they were counted over.
struct AuxCounts {
  Tensor counts;
  int64_t tokens_per_group = 0;
};

// Where forward takes its AuxCounts from.
struct CountSource {
  const AuxCounts* reuse = nullptr;  // recompute: exactly what the first forward used
  bool training = false;             // global batch: enter this step's buffer and all-reduce
};

struct RouterSaved {
  Tensor logits, scores, probs, expert_ids, lse;  // [N,E], [N,E], [N,k], [N,k] i32, [N]
  AuxCounts aux;
  int64_t group = 0;                // tokens per load-balancing group on this rank
  double aux_loss = 0, z_loss = 0;  // unscaled by their coefficients
  // What finish_forward needs from the device: the counts (unless reused), the groups' score sums
  // and the sum of lse^2.
  std::vector<Tensor> reads;
};

class Router {
 public:
  Router(ParameterStore& store, const std::string& name, MoeConfig config, int64_t d_model,
         double init_std);

  int num_experts() const { return num_experts_; }
  const ops::RouterTopkOptions& options() const { return options_; }
  // x[N,D] in sequences of seq_len tokens. The device half: the gates, and in saved.reads what the
  // losses are computed from; finish_forward takes them once they are on the host, so that the
  // MoE layer reads them together with its own counts (one wait for the device per layer).
  void forward(const Tensor& x, int64_t seq_len, const CountSource& source, RouterSaved& saved,
               Stream& stream) const;
  // reads: saved.reads on the host, in order. Sets saved.aux, aux_loss and z_loss.
  void finish_forward(const std::vector<Tensor>& reads, const CountSource& source,
                      RouterSaved& saved) const;
  // dprobs[N,k] from the combine; adds the router's part of dL/dx to dx. loss_scale multiplies the
  // aux and z terms the same way it multiplies the language-model loss.
  void backward(const Tensor& x, const RouterSaved& saved, const Tensor& dprobs, double loss_scale,
                Tensor& dx, Stream& stream) const;
  // Aux-loss-free balancing: bias += rate * sign(mean(load) - load). No-op without the bias.
  void update_expert_bias(const std::vector<int64_t>& load) const;
  // Starts an optimizer step: empties the global-batch count buffer; dp_group (may be null) is the
  // group its counts are summed over.
  void begin_step(Communicator* dp_group) const;

 private:
  Tensor input(const Tensor& x, Stream& stream) const;
  // The scores P_i averages: softmax ones as they are, sigmoid ones normalized per token.
  Tensor balance_scores(const Tensor& scores, Stream& stream) const;

  MoeConfig config_;
  int num_experts_;
  ops::RouterTopkOptions options_;
  Linear gate_;
  Buffer* expert_bias_ = nullptr;
  Tensor skew_;  // moe.router_skew's selection bias [E], undefined when off
  // What the choice adds to the scores: the expert bias and the skew (undefined: nothing).
  Tensor selection_bias(Stream& stream) const;
  bool global_batch(const CountSource& source) const;
  // The device counts f_i is computed from: per group, summed over the data-parallel group for
  // a global-batch training forward.
  Tensor count(const RouterSaved& saved, const CountSource& source, Stream& stream) const;
  // The AuxCounts of those counts once on the host, as the source says.
  AuxCounts aux_counts(const Tensor& counts, const RouterSaved& saved,
                       const CountSource& source) const;

  mutable Communicator* dp_group_ = nullptr;
  mutable Tensor step_counts_;  // f64 [1,E]: global counts of this step's micro-batches so far
  mutable int micro_batches_ = 0;
};

}  // namespace moe
