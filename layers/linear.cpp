#include "layers/linear.h"

#include "kernels/ops.h"

namespace moe {

// A bias is split with the weight's output rows; otherwise replicated, or partial like a partial
// weight (computed on one rank of the group, summed after backward).
static Placement bias_placement(const Placement& weight) {
  Placement bias{
      weight.group, weight.tp == TpMode::partial ? TpMode::partial : TpMode::replicated, {}};
  for (const Split& split : weight.splits)
    if (split.dim == 0) bias = {weight.group, weight.tp, {split}};
  return bias;
}

Linear::Linear(ParameterStore& store, const std::string& name, int64_t in, int64_t out, bool bias,
               double init_std, const Placement& placement)
    : Linear(store, name, in, out, LinearInit{Init::normal, init_std, bias, 0.0, true}, placement) {
}

Linear::Linear(ParameterStore& store, const std::string& name, int64_t in, int64_t out,
               const LinearInit& init, const Placement& placement)
    : weight_(store.add(name + ".weight", {out, in}, init.weight, init.weight_scale,
                        init.weight_decay, placement)) {
  if (init.bias)
    bias_ = &store.add(name + ".bias", {out}, Init::constant, init.bias_value, false,
                       bias_placement(placement));
}

Tensor ones_column(int64_t rows, DType dtype, Stream& stream) {
  Tensor ones = Tensor::empty({rows, 1}, dtype, stream.device);
  ops::fill(ones, 1.0, stream);
  return ones;
}

void Linear::forward(const Tensor& x, Tensor& y, Stream& stream) const {
  ops::matmul(x, weight_.for_input(x), y, false, true, 1.0f, 0.0f, stream);
  if (bias_) {
    const Tensor ones = ones_column(x.dim(0), x.dtype(), stream);
    ops::matmul(ones, bias_->for_input(x).view({1, bias_->shape[0]}), y, false, false, 1.0f, 1.0f,
                stream);
  }
}

void Linear::backward(const Tensor& x, const Tensor& dy, Tensor* dx, bool accumulate_dx,
                      Stream& stream) const {
  if (weight_.grad.defined()) ops::matmul(dy, x, weight_.grad, true, false, 1.0f, 1.0f, stream);
  if (bias_ && bias_->grad.defined()) {
    const Tensor ones = ones_column(x.dim(0), x.dtype(), stream);
    Tensor db = bias_->grad.view({1, bias_->shape[0]});
    ops::matmul(ones, dy, db, true, false, 1.0f, 1.0f, stream);
  }
  if (dx)
    ops::matmul(dy, weight_.for_input(x), *dx, false, false, 1.0f, accumulate_dx ? 1.0f : 0.0f,
                stream);
}

}  // namespace moe
