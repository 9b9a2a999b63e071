// A per-token sigmoid gate on the CPU: out[n,:] = sigmoid(logit[n]) * x[n,:]. The backward's
// logit gradient is a dot product per row, accumulated in double.
// bf16 (as kernels/cuda/sigmoid_gate.cu): each output (out; dx, dlogits) is computed from widened
// inputs and rounded once on store; s = sigmoid(logit) is held in f32 in forward (as on CUDA) and
// in double in backward (CUDA: f32).
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

static double sigmoid_of(double logit) { return 1.0 / (1.0 + std::exp(-logit)); }

void sigmoid_gate_forward(const Tensor& x, const Tensor& logits, Tensor& out, Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  storage_dispatch(x.dtype(), "sigmoid_gate_forward", [&]<typename T>() {
    const T* px = x.data<T>();
    const T* pl = logits.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n) {
      const auto s = static_cast<compute_t<T>>(sigmoid_of(widen(pl[n])));
      for (int64_t d = 0; d < width; ++d)
        po[n * width + d] = narrow<T>(s * widen(px[n * width + d]));
    }
  });
}

void sigmoid_gate_backward(const Tensor& dout, const Tensor& x, const Tensor& logits, Tensor& dx,
                           Tensor& dlogits, Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  storage_dispatch(x.dtype(), "sigmoid_gate_backward", [&]<typename T>() {
    const T* pd = dout.data<T>();
    const T* px = x.data<T>();
    const T* pl = logits.data<T>();
    T* pdx = dx.data<T>();
    T* pdl = dlogits.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n) {
      const double s = sigmoid_of(widen(pl[n]));
      double dot = 0;
      for (int64_t d = 0; d < width; ++d) {
        const double g = widen(pd[n * width + d]);
        dot += g * widen(px[n * width + d]);
        pdx[n * width + d] = narrow<T>(s * g);
      }
      pdl[n] = narrow<T>(s * (1 - s) * dot);
    }
  });
}

}  // namespace moe::cpu
