#include "layers/swiglu_ffn.h"

#include "kernels/ops.h"

namespace moe {

FfnSaved ffn_saved_for(int64_t rows, int64_t hidden, DType dtype, Device device) {
  return {Tensor::empty({rows, hidden}, dtype, device),
          Tensor::empty({rows, hidden}, dtype, device),
          Tensor::empty({rows, hidden}, dtype, device)};
}

void ffn_forward(const Tensor& x, const FfnWeights& w, FfnSaved& saved, Tensor& y, Stream& stream) {
  ops::matmul(x, w.w_gate, saved.gate, false, true, 1.0f, 0.0f, stream);
  ops::matmul(x, w.w_up, saved.up, false, true, 1.0f, 0.0f, stream);
  ops::swiglu_forward(saved.gate, saved.up, saved.hidden, stream);
  ops::matmul(saved.hidden, w.w_down, y, false, true, 1.0f, 0.0f, stream);
}

void ffn_backward(const Tensor& x, const Tensor& dy, const FfnWeights& w, const FfnSaved& saved,
                  Tensor& dx, bool accumulate_dx, Stream& stream) {
  const int64_t rows = x.dim(0), hidden = saved.gate.dim(1);
  Tensor dhidden = Tensor::empty({rows, hidden}, x.dtype(), x.device());
  ops::matmul(dy, w.w_down, dhidden, false, false, 1.0f, 0.0f, stream);
  const bool weight_grads = w.dw_down.defined();  // not for a frozen model
  Tensor dw_down = w.dw_down;
  if (weight_grads) ops::matmul(dy, saved.hidden, dw_down, true, false, 1.0f, 1.0f, stream);
  Tensor dgate = Tensor::empty({rows, hidden}, x.dtype(), x.device()),
         dup = Tensor::empty({rows, hidden}, x.dtype(), x.device());
  ops::swiglu_backward(dhidden, saved.gate, saved.up, dgate, dup, stream);
  Tensor dw_gate = w.dw_gate, dw_up = w.dw_up;
  if (weight_grads) {
    ops::matmul(dgate, x, dw_gate, true, false, 1.0f, 1.0f, stream);
    ops::matmul(dup, x, dw_up, true, false, 1.0f, 1.0f, stream);
  }
  ops::matmul(dgate, w.w_gate, dx, false, false, 1.0f, accumulate_dx ? 1.0f : 0.0f, stream);
  ops::matmul(dup, w.w_up, dx, false, false, 1.0f, 1.0f, stream);
}

}  // namespace moe
