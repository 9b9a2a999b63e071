// BTS stitch layers (METHODS.md §3.2): small trainable layers that join a frozen hub (the seed
// model) and frozen experts (its domain branches) at one depth. Gate logits always come from the
// hub state h0; each expert e has a projection P_e and a gate G_e (D x D with a bias):
// - experts_into_hub: h0' = g0 * h0 + sum_e g_e * v_e, v_e = h0 + P_e (h_e - h0), with g the
//   softmax over the hub and the experts, per hidden dimension, of (G_0 h0, G_e h0);
// - hub_into_experts: h_e' = (1 - g_e) * h_e + g_e * (h_e + P_e (h0 - h_e)) with
//   g_e = sigmoid(G_e h0), per dimension; the hub passes through.
// Both are one gate_mix op (the sigmoid blend is a two-way softmax against a zero logit).
//
// Decisions:
// - The paper mixes in W_e h_e (and W_e h0). We mix in P_e h_e + (I - P_e) h_target: the same
//   layer at P_e = W_e = I (where the expert's own state is mixed in unchanged), and an
//   initialization with P_e = 0 makes every mixed-in value the target's own state, so the stitched
//   model computes exactly the seed whatever the gates are (the issue asks for the seed's logits;
//   the paper leaves initialization open). The paper's form has no such start with live gradients:
//   its hub weight is 1 only at an infinite gate logit, where every gate gradient vanishes (we
//   measured: with expert weights of 1e-6 or 1e-3 the stitched model did not move in 150 steps).
//   Here P_e gets gradient g_e * dL/dh' (h_e - h0)^T from the first step, and the gates as soon
//   as P_e moves.
// - Gates start at weight 0 and bias 0: uniform softmax weights, sigmoid gates of 1/2.
// - Parameters are named per expert ("stitch.<i>.<expert>.proj", ".gate"; the hub's own gate
//   "stitch.<i>.hub.gate" in experts_into_hub layers), so an expert can be dropped or added
//   without touching the others' parameters.
// - No weight decay on stitch parameters (it would pull the gates' biases and P_e to 0).
// - Experts keep their own state after an experts_into_hub layer (the reading; the paper's
//   pseudo-code hands them W_e h_e).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/linear.h"

namespace moe {

enum class StitchKind { experts_into_hub, hub_into_experts };
const char* stitch_kind_name(StitchKind kind);

// What a mix's backward needs: the gate logits and mixed values [M,N,D], the output [N,D] and
// the projections' inputs (source minus target state), one per mixed-in source.
struct StitchSaved {
  Tensor logits, values, out;
  std::vector<Tensor> differences;
};

class StitchLayer {
 public:
  // experts: the names of the experts, in the order their states are passed.
  StitchLayer(ParameterStore& store, int index, StitchKind kind,
              const std::vector<std::string>& experts, int64_t d_model,
              const Placement& placement = {});

  StitchKind kind() const { return kind_; }

  // experts_into_hub: the hub's next state from the hub's and every expert's ([N,D] each).
  Tensor mix_into_hub(const Tensor& hub, const std::vector<Tensor>& experts, StitchSaved& saved,
                      Stream& stream) const;
  // dhub and every dexperts[e] are assigned.
  void mix_into_hub_backward(const Tensor& hub, const StitchSaved& saved, const Tensor& dout,
                             Tensor& dhub, std::vector<Tensor>& dexperts, Stream& stream) const;

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
