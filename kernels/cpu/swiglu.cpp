// SwiGLU activation on the CPU: out = silu(gate) * up with silu(g) = g * sigmoid(g).
// d silu/dg = s * (1 + g * (1 - s)) with s = sigmoid(g).
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

template <typename T>
static T sigmoid(T g) {
  return T(1) / (T(1) + std::exp(-g));
}

void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out, Stream&) {
  float_dispatch(gate.dtype(), "swiglu_forward", [&]<typename T>() {
    const T* pg = gate.data<T>();
    const T* pu = up.data<T>();
    T* po = out.data<T>();
    const int64_t n = gate.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) po[i] = pg[i] * sigmoid(pg[i]) * pu[i];
  });
}

void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
                     Tensor& dup, Stream&) {
  float_dispatch(gate.dtype(), "swiglu_backward", [&]<typename T>() {
    const T* pd = dout.data<T>();
    const T* pg = gate.data<T>();
    const T* pu = up.data<T>();
    T* pdg = dgate.data<T>();
    T* pdu = dup.data<T>();
    const int64_t n = gate.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const T s = sigmoid(pg[i]);
      pdg[i] = pd[i] * pu[i] * s * (T(1) + pg[i] * (T(1) - s));
      pdu[i] = pd[i] * pg[i] * s;
    }
  });
}

}  // namespace moe::cpu
