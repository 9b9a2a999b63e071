// Runs a kernel body templated on the element type, for the float dtypes the CPU backend computes
// in. float_dispatch: f32 and f64; the ops that bf16 training keeps in f32 (router, router
// losses, capacity, AdamW) call it directly, so for them bf16 is an InputError that says so.
// storage_dispatch adds bf16, stored as bf16_t and computed in f32 as the CUDA kernels do: a body
// loads with widen() into compute_t<T> and stores with narrow<T>(), which rounds to nearest even
// for bf16 and is the identity (or the same static_cast as before) for f32/f64, so those paths are
// unchanged bit for bit. fast_f32_dispatch is storage_dispatch for the ops whose f32 path has its
// own vectorised f32 arithmetic (a plain function), while f64 (the gradient-check reference) and
// bf16 (the CUDA kernels' oracle) keep the templated body. Anything else is an InputError naming
// the op.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/tensor.h"

namespace moe::cpu {

// The arithmetic type of a storage type: bf16 computes in f32.
template <typename T>
using compute_t = std::conditional_t<std::is_same_v<T, bf16_t>, float, T>;

inline float widen(bf16_t x) { return bf16_to_float(x); }
inline float widen(float x) { return x; }
inline double widen(double x) { return x; }

// Stores a computed value: bf16 rounds once, through f32, to nearest even.
template <typename T, typename U>
T narrow(U x) {
  if constexpr (std::is_same_v<T, bf16_t>)
    return float_to_bf16(static_cast<float>(x));
  else
    return static_cast<T>(x);
}

// A bf16 tensor's values written to f32 (exact). Element by element, so any thread count gives
// the same bits.
inline void widen_into(const Tensor& bf16, float* out) {
  const bf16_t* p = bf16.data<bf16_t>();
  const int64_t n = bf16.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = widen(p[i]);
}

// The accumulator of an op that rounds once at the end.
inline std::vector<float> widened(const Tensor& bf16) {
  std::vector<float> out(static_cast<size_t>(bf16.numel()));
  widen_into(bf16, out.data());
  return out;
}

// The same values as a new f32 host tensor, for a bf16 op that runs an f32 kernel.
inline Tensor widened_tensor(const Tensor& bf16) {
  Tensor out = Tensor::empty(bf16.shape(), DType::f32);
  widen_into(bf16, out.data<float>());
  return out;
}

// An f32 result stored into its bf16 output, each element rounded once to nearest even.
inline void round_into(const float* f32, Tensor& bf16) {
  bf16_t* p = bf16.data<bf16_t>();
  const int64_t n = bf16.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = narrow<bf16_t>(f32[i]);
}
inline void round_into(const Tensor& f32, Tensor& bf16) { round_into(f32.data<float>(), bf16); }

// Where a sum over several terms lands when its output rounds once: the output itself for f32/f64
// (summed in place, as ever), an f32 buffer for bf16 that round_into_output() narrows at the end.
// The buffer starts from the output's values (an accumulating op) or from zero (an assigning one).
template <typename T>
class Accumulator {
 public:
  Accumulator(Tensor& out, bool start_from_output) : out_(out) {
    if constexpr (std::is_same_v<T, bf16_t>)
      buffer_ = start_from_output ? widened(out) : std::vector<float>(out.numel(), 0.0f);
    else if (!start_from_output)
      std::fill_n(out.data<T>(), out.numel(), T(0));
  }
  compute_t<T>* data() {
    if constexpr (std::is_same_v<T, bf16_t>)
      return buffer_.data();
    else
      return out_.data<T>();
  }
  void round_into_output() {
    if constexpr (std::is_same_v<T, bf16_t>) round_into(buffer_.data(), out_);
  }

 private:
  Tensor& out_;
  std::vector<float> buffer_;
};

// Statistics (rstd, lse, target logits, router probs) are kept in compute_t<T>: f32 next to bf16
// activations, as the CUDA kernels keep them.
template <typename T>
void expect_statistics_dtype(const char* op, const char* arg, const Tensor& t) {
  MOE_CHECK(t.dtype() == dtype_of<compute_t<T>>(), op, ": ", arg, " has dtype ",
            dtype_name(t.dtype()), ", expected ", dtype_name(dtype_of<compute_t<T>>()), " for ",
            dtype_name(dtype_of<T>()), " activations");
}

template <typename Body>
void float_dispatch(DType dtype, const char* op, Body&& body) {
  switch (dtype) {
    case DType::f32:
      body.template operator()<float>();
      return;
    case DType::f64:
      body.template operator()<double>();
      return;
    case DType::bf16:
      MOE_THROW(InputError, op, ": dtype bf16 is not supported on cpu (supported: f32, f64); ",
                "bf16 training keeps this op in f32");
    default:
      MOE_THROW(InputError, op, ": dtype ", dtype_name(dtype),
                " is not supported on cpu (supported: f32, f64)");
  }
}

template <typename Body>
void storage_dispatch(DType dtype, const char* op, Body&& body) {
  if (dtype == DType::bf16) return body.template operator()<bf16_t>();
  MOE_CHECK(dtype == DType::f32 || dtype == DType::f64, op, ": dtype ", dtype_name(dtype),
            " is not supported on cpu (supported: f32, f64, bf16)");
  float_dispatch(dtype, op, body);
}

template <typename F32Body, typename Body>
void fast_f32_dispatch(DType dtype, const char* op, F32Body&& f32_body, Body&& body) {
  switch (dtype) {
    case DType::f32:
      return f32_body();
    case DType::f64:
      return body.template operator()<double>();
    case DType::bf16:
      return body.template operator()<bf16_t>();
    default:
      MOE_THROW(InputError, op, ": dtype ", dtype_name(dtype),
                " is not supported on cpu (supported: f32, f64, bf16)");
  }
}

}  // namespace moe::cpu
