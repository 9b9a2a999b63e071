// SwiGLU activation on the CPU: out = silu(gate) * up with silu(g) = g * sigmoid(g).
// d silu/dg = s * (1 + g * (1 - s)) with s = sigmoid(g).
// bf16 (as kernels/cuda/swiglu.cu): inputs widened to f32, each output (out; dgate, dup) computed
// in f32 and rounded once on store.
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

template <typename T>
static T sigmoid(T g) {
  return T(1) / (T(1) + std::exp(-g));
}

void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out, Stream&) {
  storage_dispatch(gate.dtype(), "swiglu_forward", [&]<typename T>() {
    const T* pg = gate.data<T>();
    const T* pu = up.data<T>();
    T* po = out.data<T>();
    const int64_t n = gate.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const auto g = widen(pg[i]);
      po[i] = narrow<T>(g * sigmoid(g) * widen(pu[i]));
    }
  });
}

void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
                     Tensor& dup, Stream&) {
  storage_dispatch(gate.dtype(), "swiglu_backward", [&]<typename T>() {
    using C = compute_t<T>;
    const T* pd = dout.data<T>();
    const T* pg = gate.data<T>();
    const T* pu = up.data<T>();
    T* pdg = dgate.data<T>();
    T* pdu = dup.data<T>();
    const int64_t n = gate.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const C d = widen(pd[i]), g = widen(pg[i]), u = widen(pu[i]);
      const C s = sigmoid(g);
      pdg[i] = narrow<T>(d * u * s * (C(1) + g * (C(1) - s)));
      pdu[i] = narrow<T>(d * g * s);
    }
  });
}

}  // namespace moe::cpu
