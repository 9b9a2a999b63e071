// SwiGLU activation on the CPU: out = silu(gate) * up with silu(g) = g * sigmoid(g).
// d silu/dg = s * (1 + g * (1 - s)) with s = sigmoid(g).
// f32: computed in f32 with the vectorisable sigmoid_f32 (fast_math.h), OpenMP over elements.
// f64 (the reference) with libm exp in double.
// bf16 (as kernels/cuda/swiglu.cu): inputs widened to f32, each output (out; dgate, dup) computed
// in f32 with libm expf and rounded once on store (so not bit for bit the f32 path's results).
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

namespace {

template <typename T>
T sigmoid(T g) {
  return T(1) / (T(1) + std::exp(-g));
}

// One formula for every dtype: Sigmoid is sigmoid_f32 on the f32 path, libm's on the others.
template <typename T, auto Sigmoid>
void forward(const Tensor& gate, const Tensor& up, Tensor& out) {
  const T* pg = gate.data<T>();
  const T* pu = up.data<T>();
  T* po = out.data<T>();
  const int64_t n = gate.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const auto g = widen(pg[i]);
    po[i] = narrow<T>(g * Sigmoid(g) * widen(pu[i]));
  }
}

template <typename T, auto Sigmoid>
void backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
              Tensor& dup) {
  using C = compute_t<T>;
  const T* pd = dout.data<T>();
  const T* pg = gate.data<T>();
  const T* pu = up.data<T>();
  T* pdg = dgate.data<T>();
  T* pdu = dup.data<T>();
  const int64_t n = gate.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const C d = widen(pd[i]), g = widen(pg[i]), u = widen(pu[i]);
    const C s = Sigmoid(g);
    pdg[i] = narrow<T>(d * u * s * (C(1) + g * (C(1) - s)));
    pdu[i] = narrow<T>(d * g * s);
  }
}

}  // namespace

void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out, Stream&) {
  fast_f32_dispatch(
      gate.dtype(), "swiglu_forward", [&] { forward<float, sigmoid_f32>(gate, up, out); },
      [&]<typename T>() { forward<T, sigmoid<compute_t<T>>>(gate, up, out); });
}

void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
                     Tensor& dup, Stream&) {
  fast_f32_dispatch(
      gate.dtype(), "swiglu_backward",
      [&] { backward<float, sigmoid_f32>(dout, gate, up, dgate, dup); },
      [&]<typename T>() { backward<T, sigmoid<compute_t<T>>>(dout, gate, up, dgate, dup); });
}

}  // namespace moe::cpu
