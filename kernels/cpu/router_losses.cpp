// The reductions the router's auxiliary losses are built from, on the CPU.
// - moe_expert_counts counts the first `choices` columns of expert_ids per run of `group` tokens
//   (the load-balancing loss's f_e per micro-batch or sequence). It runs serially: it checks every
//   id it reads, and an exception must not leave a parallel region.
// - group_sum sums rows per group in double (OpenMP over groups); group_broadcast, its adjoint and
//   so its backward, copies each group's row back to the group's rows (OpenMP over rows).
// - logsumexp_rows is max-subtracted with the sum in double, stable for any logit scale (the
//   z-loss). Its backward recomputes softmax = exp(x - lse) from the saved lse and accumulates.
// - normalize_rows divides each row by its sum (+ 1e-20) in double; its backward recomputes the
//   sum and assigns (OpenMP over rows for both).
// f32/f64 only: bf16 training keeps the router losses in f32 (bf16 is an InputError), except
// group_sum and group_broadcast, which also take bf16 (MLA's RoPE key shared by all heads; the sum
// in double, rounded once through f32, as on CUDA).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"
#include "kernels/cpu/logsumexp.h"

namespace moe::cpu {

void moe_expert_counts(const Tensor& expert_ids, int64_t group, int choices, Tensor& counts,
                       Stream&) {
  const int32_t* ids = expert_ids.data<int32_t>();
  const int64_t tokens = expert_ids.dim(0), k = expert_ids.dim(1), experts = counts.dim(1);
  int64_t* count = counts.data<int64_t>();
  std::fill_n(count, counts.numel(), 0);
  for (int64_t n = 0; n < tokens; ++n)
    for (int64_t j = 0; j < choices; ++j) {
      const int32_t e = ids[n * k + j];
      MOE_CHECK(e >= 0 && e < experts, "moe_expert_counts: expert_ids[", n, ", ", j, "] = ", e,
                " is outside [0, ", experts, ")");
      ++count[(n / group) * experts + e];
    }
}

void group_sum(const Tensor& x, int64_t group, Tensor& out, Stream&) {
  const int64_t groups = out.dim(0), width = out.dim(1);
  storage_dispatch(x.dtype(), "group_sum", [&]<typename T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t c = 0; c < width; ++c) {
        double sum = 0;
        for (int64_t n = g * group; n < (g + 1) * group; ++n) sum += widen(px[n * width + c]);
        po[g * width + c] = narrow<T>(sum);
      }
  });
}

void group_broadcast(const Tensor& w, int64_t group, Tensor& out, Stream&) {
  const int64_t rows = out.dim(0), width = out.dim(1);
  storage_dispatch(w.dtype(), "group_broadcast", [&]<typename T>() {
    const T* pw = w.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n) std::copy_n(pw + (n / group) * width, width, po + n * width);
  });
}

void logsumexp_rows(const Tensor& x, Tensor& lse, Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  float_dispatch(x.dtype(), "logsumexp_rows", [&]<typename T>() {
    const T* px = x.data<T>();
    T* pl = lse.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n) pl[n] = static_cast<T>(logsumexp(px + n * width, width));
  });
}

void logsumexp_rows_backward(const Tensor& x, const Tensor& lse, const Tensor& dlse, Tensor& dx,
                             Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  float_dispatch(x.dtype(), "logsumexp_rows_backward", [&]<typename T>() {
    const T* px = x.data<T>();
    const T* pl = lse.data<T>();
    const T* pd = dlse.data<T>();
    T* pdx = dx.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t c = 0; c < width; ++c) {
        const double softmax = std::exp(static_cast<double>(px[n * width + c]) - pl[n]);
        pdx[n * width + c] += static_cast<T>(pd[n] * softmax);
      }
  });
}

namespace {
constexpr double kNormalizeEps = 1e-20;  // as Megatron's: a row that underflowed to 0 stays 0

template <typename T>
double row_sum(const T* row, int64_t width) {
  double sum = 0;
  for (int64_t c = 0; c < width; ++c) sum += row[c];
  return sum + kNormalizeEps;
}
}  // namespace

void normalize_rows(const Tensor& x, Tensor& out, Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  float_dispatch(x.dtype(), "normalize_rows", [&]<typename T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n) {
      const double sum = row_sum(px + n * width, width);
      for (int64_t c = 0; c < width; ++c)
        po[n * width + c] = static_cast<T>(px[n * width + c] / sum);
    }
  });
}

void normalize_rows_backward(const Tensor& x, const Tensor& dout, Tensor& dx, Stream&) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  float_dispatch(x.dtype(), "normalize_rows_backward", [&]<typename T>() {
    const T* px = x.data<T>();
    const T* pd = dout.data<T>();
    T* pdx = dx.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n) {
      const double sum = row_sum(px + n * width, width);
      double weighted = 0;  // sum_e dout_e x_e
      for (int64_t c = 0; c < width; ++c)
        weighted += static_cast<double>(pd[n * width + c]) * px[n * width + c];
      for (int64_t c = 0; c < width; ++c)
        pdx[n * width + c] = static_cast<T>((pd[n * width + c] - weighted / sum) / sum);
    }
  });
}

}  // namespace moe::cpu
