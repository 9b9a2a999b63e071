// The MoE router: logits = x Wr^T (no bias), scores (softmax or sigmoid), top-k gates, and the
// losses that act on it (METHODS.md §5).
//
// Decisions:
// - Load-balancing loss L = E * sum_i f_i * P_i per group of tokens (the micro-batch, or each
//   sequence), averaged over groups. P_i is the mean score of expert i over the group and carries
//   the gradient; f_i comes from counts that are an input of its own (aux_counts), so the
//   global-batch variant only has to hand in all-reduced counts. Normalizations
//   (moe.aux_loss_norm): megatron f_i = count_i / (T k) and switch f_i = first-choice count_i / T,
//   both 1 when balanced; hf f_i = count_i / T, k when balanced.
// - z-loss = mean over tokens of logsumexp(logits)^2.
// - Both reach the logits through router_topk_backward's dscores input and logsumexp's backward,
//   scaled by their coefficient and the caller's loss scale.
// - The expert bias (aux-loss-free balancing) is a buffer: it ranks experts, never weights them,
//   and moves by rate * sign(mean load - load) after each optimizer step.
// - With renormalization, softmax-then-top-k equals top-k-then-softmax (Mixtral); without it, gates
//   are the raw softmax scores (Megatron's pre-softmax top-k).
#pragma once

#include <string>
#include <vector>

#include "kernels/op_types.h"
#include "layers/linear.h"
#include "trainer/config.h"

namespace moe {

struct RouterSaved {
  Tensor logits, scores, probs, expert_ids, lse;  // [N,E], [N,E], [N,k], [N,k] i32, [N]
  Tensor aux_counts;                              // i64 [G,E], what f_i was computed from
  int64_t group = 0;                              // tokens per load-balancing group
  double aux_loss = 0, z_loss = 0;                // unscaled by their coefficients
};

class Router {
 public:
  Router(ParameterStore& store, const std::string& name, const MoeConfig& config, int64_t d_model,
         double init_std);

  int num_experts() const { return num_experts_; }
  const ops::RouterTopkOptions& options() const { return options_; }
  // x[N,D] in sequences of seq_len tokens.
  void forward(const Tensor& x, int64_t seq_len, RouterSaved& saved, Stream& stream) const;
  // dprobs[N,k] from the combine; adds the router's part of dL/dx to dx. loss_scale multiplies the
  // aux and z terms the same way it multiplies the language-model loss.
  void backward(const Tensor& x, const RouterSaved& saved, const Tensor& dprobs, double loss_scale,
                Tensor& dx, Stream& stream) const;
  // Aux-loss-free balancing: bias += rate * sign(mean(load) - load). No-op without the bias.
  void update_expert_bias(const std::vector<int64_t>& load) const;

 private:
  const MoeConfig& config_;
  int num_experts_;
  ops::RouterTopkOptions options_;
  Linear gate_;
  Buffer* expert_bias_ = nullptr;
};

}  // namespace moe
