// RMSNorm on the CPU. Row statistics in double; rstd is saved so backward need not recompute it.
// Backward per row, with xhat = x * rstd:
//   dx = rstd * (dy*w - xhat * mean(dy*w*xhat)),   dw += sum over rows of dy * xhat.
// dw is accumulated per thread and reduced at the end, so rows can run in parallel.
// bf16 (as kernels/cuda/rmsnorm.cu): rstd is f32 (compute_t; a bf16 rstd is an InputError, as on
// CUDA), the statistics are computed from the widened x in double, and the rounding points are
// y = x * rstd * w, each dx, and dweight once per call (all rows' contributions are summed first,
// whether dweight is bf16 or f32). xhat = x * rstd is held in f32 before the weight multiplies it.
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

#include <omp.h>

namespace moe::cpu {

void rmsnorm_forward(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Tensor& rstd,
                     Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  storage_dispatch(x.dtype(), "rmsnorm_forward", [&]<typename T>() {
    using C = compute_t<T>;
    expect_statistics_dtype<T>("rmsnorm_forward", "rstd", rstd);
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
  });
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      Tensor& dx, Tensor& dweight, Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  storage_dispatch(x.dtype(), "rmsnorm_backward", [&]<typename T>() {
    using C = compute_t<T>;
    expect_statistics_dtype<T>("rmsnorm_backward", "rstd", rstd);
    const T* px = x.data<T>();
    const T* pdy = dy.data<T>();
    const T* pw = weight.data<T>();
    const C* pr = rstd.data<C>();
    T* pdx = dx.data<T>();
    std::vector<double> dw_per_thread(static_cast<size_t>(omp_get_max_threads() * width), 0.0);
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
  });
}

}  // namespace moe::cpu
