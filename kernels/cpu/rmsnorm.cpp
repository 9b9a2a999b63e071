// RMSNorm on the CPU. rstd is saved so backward need not recompute it.
// Backward per row, with xhat = x * rstd:
//   dx = rstd * (dy*w - xhat * mean(dy*w*xhat)),   dw += sum over rows of dy * xhat.
// dw is accumulated per thread in double and reduced at the end, so rows can run in parallel.
// f32: loops the compiler vectorises. The two row reductions (the sum of squares, the dy*w*xhat
// dot) are lane_sum (fast_math.h) in double over f32 products, in an order that depends on the row
// length only, never on the thread count; rstd = 1/sqrt(mean + eps) in double, rounded to f32 (so
// it stays within an ulp or so of the f64 answer, as the CUDA kernel's comparisons assume); the
// elementwise products (y, xhat, dx) are f32. dw sums the f32 products dy * xhat in double.
// f64 (the reference): the row statistics and dx in double.
// bf16 (as kernels/cuda/rmsnorm.cu): rstd is f32 (compute_t; a bf16 rstd is an InputError, as on
// CUDA), the statistics are computed from the widened x in double, and the rounding points are
// y = x * rstd * w, each dx, and dweight once per call (all rows' contributions are summed first,
// whether dweight is bf16 or f32). xhat = x * rstd is held in f32 before the weight multiplies it.
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/float_dispatch.h"

#include <omp.h>

namespace moe::cpu {

namespace {

void forward_f32(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Tensor& rstd) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  const float* px = x.data<float>();
  const float* pw = weight.data<float>();
  float* py = y.data<float>();
  float* pr = rstd.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < rows; ++n) {
    const float* xr = px + n * width;
    float* yr = py + n * width;
    const double sum = lane_sum<double>(width, [&](int64_t d) { return double{xr[d]} * xr[d]; });
    const float r = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(width) + eps));
    pr[n] = r;
#pragma omp simd
    for (int64_t d = 0; d < width; ++d) yr[d] = xr[d] * r * pw[d];
  }
}

// Adds this thread's rows' dy * xhat into dw.
void backward_f32(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                  Tensor& dx, std::vector<double>& dw_per_thread) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
  const float* pw = weight.data<float>();
  const float* pr = rstd.data<float>();
  float* pdx = dx.data<float>();
#pragma omp parallel
  {
    double* dw = dw_per_thread.data() + omp_get_thread_num() * width;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < rows; ++n) {
      const float* xr = px + n * width;
      const float* dyr = pdy + n * width;
      float* dxr = pdx + n * width;
      const float r = pr[n];
      const double dot =
          lane_sum<double>(width, [&](int64_t d) { return dyr[d] * pw[d] * (xr[d] * r); });
#pragma omp simd
      for (int64_t d = 0; d < width; ++d) dw[d] += static_cast<double>(dyr[d] * (xr[d] * r));
      const float mean = static_cast<float>(dot / static_cast<double>(width));
#pragma omp simd
      for (int64_t d = 0; d < width; ++d) dxr[d] = r * (dyr[d] * pw[d] - xr[d] * r * mean);
    }
  }
}

template <typename T>
void forward(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Tensor& rstd) {
  using C = compute_t<T>;
  const int64_t rows = x.dim(0), width = x.dim(1);
  const T* px = x.data<T>();
  const T* pw = weight.data<T>();
  T* py = y.data<T>();
  C* pr = rstd.data<C>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < rows; ++n) {
    const T* xr = px + n * width;
    double sum = 0;
    for (int64_t d = 0; d < width; ++d) {
      const double v = widen(xr[d]);
      sum += v * v;
    }
    const double r = 1.0 / std::sqrt(sum / static_cast<double>(width) + eps);
    pr[n] = static_cast<C>(r);
    for (int64_t d = 0; d < width; ++d)
      py[n * width + d] = narrow<T>(static_cast<C>(widen(xr[d]) * r) * widen(pw[d]));
  }
}

template <typename T>
void backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
              Tensor& dx, std::vector<double>& dw_per_thread) {
  using C = compute_t<T>;
  const int64_t rows = x.dim(0), width = x.dim(1);
  const T* px = x.data<T>();
  const T* pdy = dy.data<T>();
  const T* pw = weight.data<T>();
  const C* pr = rstd.data<C>();
  T* pdx = dx.data<T>();
#pragma omp parallel
  {
    double* dw = dw_per_thread.data() + omp_get_thread_num() * width;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < rows; ++n) {
      const T* xr = px + n * width;
      const T* dyr = pdy + n * width;
      const double r = pr[n];
      double dot = 0;
      for (int64_t d = 0; d < width; ++d) {
        const double xhat = widen(xr[d]) * r;
        dot += widen(dyr[d]) * static_cast<double>(widen(pw[d])) * xhat;
        dw[d] += widen(dyr[d]) * xhat;
      }
      const double mean = dot / static_cast<double>(width);
      for (int64_t d = 0; d < width; ++d)
        pdx[n * width + d] = narrow<T>(
            r * (widen(dyr[d]) * static_cast<double>(widen(pw[d])) - widen(xr[d]) * r * mean));
    }
  }
}

}  // namespace

void rmsnorm_forward(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Tensor& rstd,
                     Stream&) {
  fast_f32_dispatch(
      x.dtype(), "rmsnorm_forward",
      [&] {
        expect_statistics_dtype<float>("rmsnorm_forward", "rstd", rstd);
        forward_f32(x, weight, eps, y, rstd);
      },
      [&]<typename T>() {
        expect_statistics_dtype<T>("rmsnorm_forward", "rstd", rstd);
        forward<T>(x, weight, eps, y, rstd);
      });
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      Tensor& dx, Tensor& dweight, Stream&) {
  const int64_t width = x.dim(1);
  std::vector<double> dw_per_thread(static_cast<size_t>(omp_get_max_threads() * width), 0.0);
  fast_f32_dispatch(
      x.dtype(), "rmsnorm_backward",
      [&] {
        expect_statistics_dtype<float>("rmsnorm_backward", "rstd", rstd);
        backward_f32(dy, x, weight, rstd, dx, dw_per_thread);
      },
      [&]<typename T>() {
        expect_statistics_dtype<T>("rmsnorm_backward", "rstd", rstd);
        backward<T>(dy, x, weight, rstd, dx, dw_per_thread);
      });
  if (!dweight.defined()) return;
  const size_t threads = dw_per_thread.size() / static_cast<size_t>(width);
  storage_dispatch(dweight.dtype(), "rmsnorm_backward", [&]<typename W>() {
    using CW = compute_t<W>;
    W* pdw = dweight.data<W>();
    for (int64_t d = 0; d < width; ++d) {
      CW sum = widen(pdw[d]);
      for (size_t t = 0; t < threads; ++t) sum += static_cast<CW>(dw_per_thread[t * width + d]);
      pdw[d] = narrow<W>(sum);
    }
  });
}

}  // namespace moe::cpu
