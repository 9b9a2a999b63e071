#include "layers/mlp.h"

#include "kernels/ops.h"
#include "layers/activation_sum.h"
#include "layers/tensor_parallel.h"

namespace moe {

Mlp::Mlp(ParameterStore& store, const std::string& name, int64_t d_model, int64_t hidden,
         double init_std, const ParallelGroups& groups)
    : tp_(groups.tp),
      hidden_(tp_share(hidden, (name + " hidden size").c_str(), groups)),
      w_gate_(store.add(name + ".w_gate", {hidden, d_model}, Init::normal, init_std, true,
                        column_parallel(groups))),
      w_up_(store.add(name + ".w_up", {hidden, d_model}, Init::normal, init_std, true,
                      column_parallel(groups))),
      w_down_(store.add(name + ".w_down", {d_model, hidden}, Init::normal, init_std, true,
                        row_parallel(groups))) {}

FfnWeights Mlp::weights() const {
  return {w_gate_.compute, w_up_.compute, w_down_.compute, w_gate_.grad, w_up_.grad, w_down_.grad};
}

void Mlp::forward(const Tensor& x, FfnSaved& saved, Tensor& y, Stream& stream) const {
  ffn_forward(x, weights(), saved, y, stream);
  all_reduce_activations(tp_, y, stream);
}

void Mlp::backward(const Tensor& x, const Tensor& dy, const FfnSaved& saved, Tensor& dx,
                   bool accumulate_dx, Stream& stream) const {
  if (group_size(tp_) == 1 || !accumulate_dx) {
    ffn_backward(x, dy, weights(), saved, dx, accumulate_dx, stream);
    all_reduce_activations(tp_, dx, stream);
    return;
  }
  // Only this MLP's part of dx is a partial sum over TP; what dx already holds is not.
  Tensor partial = Tensor::empty(dx.shape(), dx.dtype(), dx.device());
  ffn_backward(x, dy, weights(), saved, partial, false, stream);
  all_reduce_activations(tp_, partial, stream);
  ops::add(dx, partial, dx, stream);
}

}  // namespace moe
