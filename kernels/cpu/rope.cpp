// Rotary position embedding on the CPU, in the Hugging Face "rotate half" pairing: element i of a
// head and element i + hd/2 form a pair that turns by position * inv_freq[i] (the caller's f64
// table), with cos and sin multiplied by scale.
// - Angles, cos and sin are computed in double, once per (row, pair), and shared by all heads.
// - Both elements of a pair are read before either is written, so out may alias x.
// - Backward is the same rotation by the negated angle, times scale: a rotation's transpose is its
//   inverse.
// - Positions are checked before the parallel loop, so a bad one throws from the calling thread.
// - f32: each row's cos and sin (computed in double as above) are rounded to f32 once, then every
//   head turns its pairs in f32, a loop over the pair index that the compiler vectorises.
// - f64 (the reference): the rotation in double.
// - bf16 (as kernels/cuda/rope.cu): elements widened exactly, the rotation in f64, each output
//   rounded on store, f64 -> f32 -> bf16 (the CUDA kernel's two steps, so both round alike).
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

namespace {

void check_positions(const char* op, const Tensor& positions) {
  const int32_t* pos = positions.data<int32_t>();
  for (int64_t n = 0; n < positions.numel(); ++n)
    MOE_CHECK(pos[n] >= 0, op, ": positions[", n, "] is ", pos[n], ", positions must be >= 0");
}

// out = scale * x with every pair turned by direction * angle (direction +1 forward, -1 backward).
void rotate(const char* op, const Tensor& x, const Tensor& positions, const Tensor& inv_freq,
            double scale, double direction, Tensor& out) {
  check_positions(op, positions);
  const int64_t rows = x.dim(0), heads = x.dim(1), head_dim = x.dim(2), half = head_dim / 2;
  const double* freq = inv_freq.data<double>();
  const int32_t* pos = positions.data<int32_t>();
  fast_f32_dispatch(
      x.dtype(), op,
      [&] {
        const float* px = x.data<float>();
        float* po = out.data<float>();
#pragma omp parallel
        {
          std::vector<float> cos_row(static_cast<size_t>(half)), sin_row(static_cast<size_t>(half));
#pragma omp for schedule(static)
          for (int64_t n = 0; n < rows; ++n) {
            for (int64_t i = 0; i < half; ++i) {
              const double angle = direction * pos[n] * freq[i];
              cos_row[i] = static_cast<float>(scale * std::cos(angle));
              sin_row[i] = static_cast<float>(scale * std::sin(angle));
            }
            for (int64_t h = 0; h < heads; ++h) {
              const float* a = px + (n * heads + h) * head_dim;
              float* o = po + (n * heads + h) * head_dim;
#pragma omp simd
              for (int64_t i = 0; i < half; ++i) {
                const float lo = a[i], hi = a[i + half];
                o[i] = lo * cos_row[i] - hi * sin_row[i];
                o[i + half] = hi * cos_row[i] + lo * sin_row[i];
              }
            }
          }
        }
      },
      [&]<typename T>() {
        const T* px = x.data<T>();
        T* po = out.data<T>();
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < rows; ++n) {
          for (int64_t i = 0; i < half; ++i) {
            const double angle = direction * pos[n] * freq[i];
            const double c = scale * std::cos(angle), s = scale * std::sin(angle);
            for (int64_t h = 0; h < heads; ++h) {
              const int64_t lo = (n * heads + h) * head_dim + i, hi = lo + half;
              const double a = widen(px[lo]), b = widen(px[hi]);
              po[lo] = narrow<T>(a * c - b * s);
              po[hi] = narrow<T>(b * c + a * s);
            }
          }
        }
      });
}

}  // namespace

void rope_forward(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float scale,
                  Tensor& out, Stream&) {
  rotate("rope_forward", x, positions, inv_freq, scale, 1.0, out);
}

void rope_backward(const Tensor& dout, const Tensor& positions, const Tensor& inv_freq, float scale,
                   Tensor& dx, Stream&) {
  rotate("rope_backward", dout, positions, inv_freq, scale, -1.0, dx);
}

}  // namespace moe::cpu
