// The SwiGLU feed-forward math, y = (silu(x Wg^T) * (x Wu^T)) Wd^T, on weight tensors rather than
// modules, because the dense MLP, the shared experts and every routed expert (a slice of the
// stacked [E, F, D] weights) all run exactly this.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace moe {

struct FfnWeights {
  Tensor w_gate, w_up, w_down;     // [F,D], [F,D], [D,F]
  Tensor dw_gate, dw_up, dw_down;  // their gradients, accumulated
};

// Activations backward needs, each [N,F]; the caller allocates them (experts pass row slices).
struct FfnSaved {
  Tensor gate, up, hidden;
};

FfnSaved ffn_saved_for(int64_t rows, int64_t hidden, DType dtype, Device device = Device::cpu());
void ffn_forward(const Tensor& x, const FfnWeights& w, FfnSaved& saved, Tensor& y, Stream& stream);
// dx is assigned, or added to when accumulate_dx.
void ffn_backward(const Tensor& x, const Tensor& dy, const FfnWeights& w, const FfnSaved& saved,
                  Tensor& dx, bool accumulate_dx, Stream& stream);

}  // namespace moe
