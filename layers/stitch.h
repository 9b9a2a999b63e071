// BTS stitch layers (METHODS.md §3.2): small trainable layers that join a frozen hub (the seed
// model) and frozen experts (its domain branches) at one depth. Gate logits always come from the
// hub state h0; each expert e has a projection P_e and a gate G_e (D x D with a bias):
// - experts_into_hub: h0' = g0 * h0 + sum_e g_e * P_e h_e, with g = softmax over the hub and the
//   experts, per hidden dimension, of (G_0 h0, G_e h0);
// - hub_into_experts: h_e' = (1 - g_e) * h_e + g_e * P_e h0 with g_e = sigmoid(G_e h0), per
//   dimension; the hub passes through.
// Both are one gate_mix op (the sigmoid blend is a two-way softmax against a zero logit).
//
// Decisions:
// - Parameters are named per expert ("stitch.<i>.<expert>.proj", ".gate"; the hub's own gate
//   "stitch.<i>.hub.gate" in experts_into_hub layers), so an expert can be dropped or added
//   without touching the others' parameters.
// - Initialization (the paper leaves it open): P_e = I, gate weights 0, and gate biases that give
//   every expert the weight `expert_weight` (default 1e-6) in every dimension: the stitched model
//   starts as the seed up to that weight, while the gates keep gradients (a softmax weight of
//   exactly 0 needs an infinite logit, where every gate gradient vanishes). The hub's bias is 0 and
//   an expert's is log(w / (1 - n w)) in experts_into_hub layers, logit(w) in hub_into_experts.
// - No weight decay on stitch parameters: it would pull P_e from I towards 0.
// - Experts keep their own state after an experts_into_hub layer (the reading; the paper's
//   pseudo-code hands them P_e h_e, which is h_e at initialization anyway).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/linear.h"

namespace moe {

enum class StitchKind { experts_into_hub, hub_into_experts };
const char* stitch_kind_name(StitchKind kind);

// What a mix's backward needs: the gate logits and mixed values [M,N,D] and the output [N,D].
struct StitchSaved {
  Tensor logits, values, out;
};

class StitchLayer {
 public:
  // experts: the names of the experts, in the order their states are passed.
  StitchLayer(ParameterStore& store, int index, StitchKind kind,
              const std::vector<std::string>& experts, int64_t d_model, double expert_weight,
              const Placement& placement = {});

  StitchKind kind() const { return kind_; }

  // experts_into_hub: the hub's next state from the hub's and every expert's ([N,D] each).
  Tensor mix_into_hub(const Tensor& hub, const std::vector<Tensor>& experts, StitchSaved& saved,
                      Stream& stream) const;
  // dhub is assigned, and dexperts[e] for every expert (allocated when undefined).
  void mix_into_hub_backward(const Tensor& hub, const std::vector<Tensor>& experts,
                             const StitchSaved& saved, const Tensor& dout, Tensor& dhub,
                             std::vector<Tensor>& dexperts, Stream& stream) const;

  // hub_into_experts: expert e's next state.
  Tensor mix_into_expert(int e, const Tensor& hub, const Tensor& expert, StitchSaved& saved,
                         Stream& stream) const;
  // dhub is added to; dexpert is assigned.
  void mix_into_expert_backward(int e, const Tensor& hub, const StitchSaved& saved,
                                const Tensor& dout, Tensor& dhub, Tensor& dexpert,
                                Stream& stream) const;

 private:
  StitchKind kind_;
  std::unique_ptr<Linear> hub_gate_;  // experts_into_hub only
  std::vector<std::unique_ptr<Linear>> gates_, projections_;
};

}  // namespace moe
