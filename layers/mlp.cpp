#include "layers/mlp.h"

namespace moe {

Mlp::Mlp(ParameterStore& store, const std::string& name, int64_t d_model, int64_t hidden,
         double init_std)
    : hidden_(hidden),
      w_gate_(store.add(name + ".w_gate", {hidden, d_model}, Init::normal, init_std, true)),
      w_up_(store.add(name + ".w_up", {hidden, d_model}, Init::normal, init_std, true)),
      w_down_(store.add(name + ".w_down", {d_model, hidden}, Init::normal, init_std, true)) {}

FfnWeights Mlp::weights() const {
  return {w_gate_.value, w_up_.value, w_down_.value, w_gate_.grad, w_up_.grad, w_down_.grad};
}

void Mlp::forward(const Tensor& x, FfnSaved& saved, Tensor& y, Stream& stream) const {
  ffn_forward(x, weights(), saved, y, stream);
}

void Mlp::backward(const Tensor& x, const Tensor& dy, const FfnSaved& saved, Tensor& dx,
                   bool accumulate_dx, Stream& stream) const {
  ffn_backward(x, dy, weights(), saved, dx, accumulate_dx, stream);
}

}  // namespace moe
