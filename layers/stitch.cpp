#include "layers/stitch.h"

#include "kernels/ops.h"

namespace moe {

const char* stitch_kind_name(StitchKind kind) {
  return kind == StitchKind::experts_into_hub ? "experts_into_hub" : "hub_into_experts";
}

StitchLayer::StitchLayer(ParameterStore& store, int index, StitchKind kind,
                         const std::vector<std::string>& experts, int64_t d_model,
                         const Placement& placement)
    : kind_(kind) {
  const std::string prefix = "stitch." + std::to_string(index) + ".";
  const LinearInit gate{Init::zeros, 0.0, true, 0.0, false};
  const LinearInit projection{Init::zeros, 0.0, false, 0.0, false};
  if (kind == StitchKind::experts_into_hub)
    hub_gate_ =
        std::make_unique<Linear>(store, prefix + "hub.gate", d_model, d_model, gate, placement);
  for (const std::string& name : experts) {
    gates_.push_back(std::make_unique<Linear>(store, prefix + name + ".gate", d_model, d_model,
                                              gate, placement));
    projections_.push_back(std::make_unique<Linear>(store, prefix + name + ".proj", d_model,
                                                    d_model, projection, placement));
  }
}

namespace {

// Model m's slot of an [M,N,D] tensor.
Tensor slot(const Tensor& t, int64_t m) { return t.narrow(m, 1).view({t.dim(1), t.dim(2)}); }

// a - b.
Tensor difference(const Tensor& a, const Tensor& b, Stream& stream) {
  Tensor d = Tensor::empty(a.shape(), a.dtype());
  ops::copy(a, d, stream);
  ops::axpy(-1.0f, b, d, stream);
  return d;
}

}  // namespace

// value = target + P (source - target), into `value`; returns source - target for backward.
static Tensor project_towards(const Linear& projection, const Tensor& source, const Tensor& target,
                              Tensor value, Stream& stream) {
  Tensor diff = difference(source, target, stream);
  projection.forward(diff, value, stream);
  ops::add(value, target, value, stream);
  return diff;
}

// Backward of project_towards: dsource is assigned, dtarget added to.
static void project_towards_backward(const Linear& projection, const Tensor& diff,
                                     const Tensor& dvalue, Tensor& dsource, Tensor& dtarget,
                                     Stream& stream) {
  dsource = Tensor::empty(diff.shape(), diff.dtype());
  projection.backward(diff, dvalue, &dsource, false, stream);
  ops::add(dtarget, dvalue, dtarget, stream);
  ops::axpy(-1.0f, dsource, dtarget, stream);
}

Tensor StitchLayer::mix_into_hub(const Tensor& hub, const std::vector<Tensor>& experts,
                                 StitchSaved& saved, Stream& stream) const {
  MOE_ASSERT(kind_ == StitchKind::experts_into_hub && experts.size() == gates_.size(),
             "mix_into_hub on a ", stitch_kind_name(kind_), " layer or with ", experts.size(),
             " expert states for ", gates_.size(), " experts");
  const int64_t models = 1 + static_cast<int64_t>(experts.size());
  const Shape mixed{models, hub.dim(0), hub.dim(1)};
  saved.logits = Tensor::empty(mixed, hub.dtype());
  saved.values = Tensor::empty(mixed, hub.dtype());
  saved.differences.clear();
  Tensor own_logits = slot(saved.logits, 0), own_value = slot(saved.values, 0);
  hub_gate_->forward(hub, own_logits, stream);
  ops::copy(hub, own_value, stream);
  for (size_t e = 0; e < experts.size(); ++e) {
    Tensor logits = slot(saved.logits, 1 + static_cast<int64_t>(e));
    gates_[e]->forward(hub, logits, stream);
    saved.differences.push_back(project_towards(*projections_[e], experts[e], hub,
                                                slot(saved.values, 1 + static_cast<int64_t>(e)),
                                                stream));
  }
  saved.out = Tensor::empty(hub.shape(), hub.dtype());
  ops::gate_mix_forward(saved.logits, saved.values, saved.out, stream);
  return saved.out;
}

void StitchLayer::mix_into_hub_backward(const Tensor& hub, const StitchSaved& saved,
                                        const Tensor& dout, Tensor& dhub,
                                        std::vector<Tensor>& dexperts, Stream& stream) const {
  Tensor dlogits = Tensor::empty(saved.logits.shape(), hub.dtype());
  Tensor dvalues = Tensor::empty(saved.values.shape(), hub.dtype());
  ops::gate_mix_backward(dout, saved.logits, saved.values, saved.out, dlogits, dvalues, stream);
  dhub = slot(dvalues, 0);
  hub_gate_->backward(hub, slot(dlogits, 0), &dhub, true, stream);
  dexperts.assign(gates_.size(), Tensor());
  for (size_t e = 0; e < gates_.size(); ++e) {
    const int64_t m = 1 + static_cast<int64_t>(e);
    gates_[e]->backward(hub, slot(dlogits, m), &dhub, true, stream);
    project_towards_backward(*projections_[e], saved.differences[e], slot(dvalues, m), dexperts[e],
                             dhub, stream);
  }
}

Tensor StitchLayer::mix_into_expert(int e, const Tensor& hub, const Tensor& expert,
                                    StitchSaved& saved, Stream& stream) const {
  MOE_ASSERT(kind_ == StitchKind::hub_into_experts && e >= 0 && e < static_cast<int>(gates_.size()),
             "mix_into_expert(", e, ") on a ", stitch_kind_name(kind_), " layer");
  const Shape mixed{2, hub.dim(0), hub.dim(1)};
  saved.logits = Tensor::zeros(mixed, hub.dtype());
  saved.values = Tensor::empty(mixed, hub.dtype());
  Tensor own_value = slot(saved.values, 0), gate = slot(saved.logits, 1);
  ops::copy(expert, own_value, stream);
  gates_[e]->forward(hub, gate, stream);
  saved.differences = {
      project_towards(*projections_[e], hub, expert, slot(saved.values, 1), stream)};
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
  Tensor dprojected;
  project_towards_backward(*projections_[e], saved.differences[0], slot(dvalues, 1), dprojected,
                           dexpert, stream);
  ops::add(dhub, dprojected, dhub, stream);
}

}  // namespace moe
