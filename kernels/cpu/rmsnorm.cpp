// RMSNorm on the CPU. Row statistics in double; rstd is saved so backward need not recompute it.
// Backward per row, with xhat = x * rstd:
//   dx = rstd * (dy*w - xhat * mean(dy*w*xhat)),   dw += sum over rows of dy * xhat.
// dw is accumulated per thread and reduced at the end, so rows can run in parallel.
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

#include <omp.h>

namespace moe::cpu {

void rmsnorm_forward(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Tensor& rstd,
                     Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  float_dispatch(x.dtype(), "rmsnorm_forward", [&]<typename T>() {
    const T* px = x.data<T>();
    const T* pw = weight.data<T>();
    T* py = y.data<T>();
    T* pr = rstd.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n) {
      const T* xr = px + n * width;
      double sum = 0;
      for (int64_t d = 0; d < width; ++d) sum += static_cast<double>(xr[d]) * xr[d];
      const double r = 1.0 / std::sqrt(sum / static_cast<double>(width) + eps);
      pr[n] = static_cast<T>(r);
      for (int64_t d = 0; d < width; ++d) py[n * width + d] = static_cast<T>(xr[d] * r) * pw[d];
    }
  });
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      Tensor& dx, Tensor& dweight, Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  float_dispatch(x.dtype(), "rmsnorm_backward", [&]<typename T>() {
    const T* px = x.data<T>();
    const T* pdy = dy.data<T>();
    const T* pw = weight.data<T>();
    const T* pr = rstd.data<T>();
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
          const double xhat = xr[d] * r;
          dot += dyr[d] * static_cast<double>(pw[d]) * xhat;
          dw[d] += dyr[d] * xhat;
        }
        const double mean = dot / static_cast<double>(width);
        for (int64_t d = 0; d < width; ++d)
          pdx[n * width + d] =
              static_cast<T>(r * (dyr[d] * static_cast<double>(pw[d]) - xr[d] * r * mean));
      }
    }
    if (!dweight.defined()) return;
    T* pdw = dweight.data<T>();
    for (size_t t = 0; t < dw_per_thread.size() / static_cast<size_t>(width); ++t)
      for (int64_t d = 0; d < width; ++d) pdw[d] += static_cast<T>(dw_per_thread[t * width + d]);
  });
}

}  // namespace moe::cpu
