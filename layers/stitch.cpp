#include "layers/stitch.h"

#include <cmath>

#include "kernels/ops.h"

namespace moe {

const char* stitch_kind_name(StitchKind kind) {
  return kind == StitchKind::experts_into_hub ? "experts_into_hub" : "hub_into_experts";
}

StitchLayer::StitchLayer(ParameterStore& store, int index, StitchKind kind,
                         const std::vector<std::string>& experts, int64_t d_model,
                         double expert_weight, const Placement& placement)
    : kind_(kind) {
  const double n = static_cast<double>(experts.size());
  MOE_CHECK(expert_weight > 0 && expert_weight * n < 1, "bts.expert_weight = ", expert_weight,
            " must be in (0, 1/", experts.size(), ") for ", experts.size(), " experts");
  const std::string prefix = "stitch." + std::to_string(index) + ".";
  const double expert_bias = kind == StitchKind::experts_into_hub
                                 ? std::log(expert_weight / (1 - n * expert_weight))
                                 : std::log(expert_weight / (1 - expert_weight));
  const LinearInit gate{Init::zeros, 0.0, true, expert_bias, false};
  if (kind == StitchKind::experts_into_hub)
    hub_gate_ = std::make_unique<Linear>(store, prefix + "hub.gate", d_model, d_model,
                                         LinearInit{Init::zeros, 0.0, true, 0.0, false}, placement);
  for (const std::string& name : experts) {
    gates_.push_back(std::make_unique<Linear>(store, prefix + name + ".gate", d_model, d_model,
                                              gate, placement));
    projections_.push_back(
        std::make_unique<Linear>(store, prefix + name + ".proj", d_model, d_model,
                                 LinearInit{Init::identity, 0.0, false, 0.0, false}, placement));
  }
}

// Model m's slot of an [M,N,D] tensor.
static Tensor slot(const Tensor& t, int64_t m) { return t.narrow(m, 1).view({t.dim(1), t.dim(2)}); }

Tensor StitchLayer::mix_into_hub(const Tensor& hub, const std::vector<Tensor>& experts,
                                 StitchSaved& saved, Stream& stream) const {
  MOE_ASSERT(kind_ == StitchKind::experts_into_hub && experts.size() == gates_.size(),
             "mix_into_hub on a ", stitch_kind_name(kind_), " layer or with ", experts.size(),
             " expert states for ", gates_.size(), " experts");
  const int64_t models = 1 + static_cast<int64_t>(experts.size());
  const Shape mixed{models, hub.dim(0), hub.dim(1)};
  saved.logits = Tensor::empty(mixed, hub.dtype());
  saved.values = Tensor::empty(mixed, hub.dtype());
  Tensor logits = slot(saved.logits, 0), values = slot(saved.values, 0);
  hub_gate_->forward(hub, logits, stream);
  ops::copy(hub, values, stream);
  for (size_t e = 0; e < experts.size(); ++e) {
    logits = slot(saved.logits, 1 + static_cast<int64_t>(e));
    values = slot(saved.values, 1 + static_cast<int64_t>(e));
    gates_[e]->forward(hub, logits, stream);
    projections_[e]->forward(experts[e], values, stream);
  }
  saved.out = Tensor::empty(hub.shape(), hub.dtype());
  ops::gate_mix_forward(saved.logits, saved.values, saved.out, stream);
  return saved.out;
}

void StitchLayer::mix_into_hub_backward(const Tensor& hub, const std::vector<Tensor>& experts,
                                        const StitchSaved& saved, const Tensor& dout, Tensor& dhub,
                                        std::vector<Tensor>& dexperts, Stream& stream) const {
  Tensor dlogits = Tensor::empty(saved.logits.shape(), hub.dtype());
  Tensor dvalues = Tensor::empty(saved.values.shape(), hub.dtype());
  ops::gate_mix_backward(dout, saved.logits, saved.values, saved.out, dlogits, dvalues, stream);
  dhub = slot(dvalues, 0);
  hub_gate_->backward(hub, slot(dlogits, 0), &dhub, true, stream);
  dexperts.resize(experts.size());
  for (size_t e = 0; e < experts.size(); ++e) {
    const int64_t m = 1 + static_cast<int64_t>(e);
    gates_[e]->backward(hub, slot(dlogits, m), &dhub, true, stream);
    if (!dexperts[e].defined()) dexperts[e] = Tensor::empty(hub.shape(), hub.dtype());
    projections_[e]->backward(experts[e], slot(dvalues, m), &dexperts[e], false, stream);
  }
}

Tensor StitchLayer::mix_into_expert(int e, const Tensor& hub, const Tensor& expert,
                                    StitchSaved& saved, Stream& stream) const {
  MOE_ASSERT(kind_ == StitchKind::hub_into_experts && e >= 0 && e < static_cast<int>(gates_.size()),
             "mix_into_expert(", e, ") on a ", stitch_kind_name(kind_), " layer");
  const Shape mixed{2, hub.dim(0), hub.dim(1)};
  saved.logits = Tensor::zeros(mixed, hub.dtype());
  saved.values = Tensor::empty(mixed, hub.dtype());
  Tensor own = slot(saved.values, 0), gate = slot(saved.logits, 1),
         projected = slot(saved.values, 1);
  ops::copy(expert, own, stream);
  gates_[e]->forward(hub, gate, stream);
  projections_[e]->forward(hub, projected, stream);
  saved.out = Tensor::empty(hub.shape(), hub.dtype());
  ops::gate_mix_forward(saved.logits, saved.values, saved.out, stream);
  return saved.out;
}

void StitchLayer::mix_into_expert_backward(int e, const Tensor& hub, const StitchSaved& saved,
                                           const Tensor& dout, Tensor& dhub, Tensor& dexpert,
                                           Stream& stream) const {
  Tensor dlogits = Tensor::empty(saved.logits.shape(), hub.dtype());
  Tensor dvalues = Tensor::empty(saved.values.shape(), hub.dtype());
  ops::gate_mix_backward(dout, saved.logits, saved.values, saved.out, dlogits, dvalues, stream);
  dexpert = slot(dvalues, 0);
  gates_[e]->backward(hub, slot(dlogits, 1), &dhub, true, stream);
  projections_[e]->backward(hub, slot(dvalues, 1), &dhub, true, stream);
}

}  // namespace moe
