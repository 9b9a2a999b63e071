// Memory and elementwise ops on the CPU: fill, copy, copy_columns, dtype conversion, add, axpy,
// scale and the f64-accumulated sum of squares used by gradient-norm clipping. OpenMP over
// elements (copy_columns: over rows, one memcpy each).
// bf16 (as kernels/cuda/elementwise.cu): add, axpy and scale widen their inputs to f32, compute
// in f32 (axpy: y + alpha * x) and round the result once on store; sum_of_squares widens each
// element exactly and accumulates in f64, with no rounding to bf16 at all.
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

void fill(Tensor& out, double value, Stream&) {
  const int64_t n = out.numel();
  switch (out.dtype()) {
    case DType::i32:
      std::fill_n(out.data<int32_t>(), n, static_cast<int32_t>(value));
      return;
    case DType::i64:
      std::fill_n(out.data<int64_t>(), n, static_cast<int64_t>(value));
      return;
    case DType::bf16:
      std::fill_n(out.data<bf16_t>(), n, float_to_bf16(static_cast<float>(value)));
      return;
    case DType::f16:
      std::fill_n(out.data<f16_t>(), n, float_to_f16(static_cast<float>(value)));
      return;
    default:
      float_dispatch(out.dtype(), "fill",
                     [&]<typename T>() { std::fill_n(out.data<T>(), n, static_cast<T>(value)); });
  }
}

void copy(const Tensor& src, Tensor& dst, Stream&) {
  if (src.nbytes() && src.raw() != dst.raw()) std::memcpy(dst.raw(), src.raw(), src.nbytes());
}

void copy_columns(const Tensor& src, int64_t src_col, Tensor& dst, int64_t dst_col, int64_t width,
                  Stream&) {
  const int64_t rows = src.dim(0), element = static_cast<int64_t>(dtype_size(src.dtype()));
  const size_t bytes = static_cast<size_t>(width * element);
  const auto* from = static_cast<const char*>(src.raw()) + src_col * element;
  auto* to = static_cast<char*>(dst.raw()) + dst_col * element;
  const int64_t src_stride = src.dim(1) * element, dst_stride = dst.dim(1) * element;
#pragma omp parallel for schedule(static) if (rows * width > 16384)
  for (int64_t r = 0; r < rows; ++r) std::memcpy(to + r * dst_stride, from + r * src_stride, bytes);
}

// Reads element i of any float tensor as double, writes double to any float tensor.
static double load(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::f32:
      return t.data<float>()[i];
    case DType::f64:
      return t.data<double>()[i];
    case DType::bf16:
      return bf16_to_float(t.data<bf16_t>()[i]);
    case DType::f16:
      return f16_to_float(t.data<f16_t>()[i]);
    default:
      MOE_ASSERT(false, "load: not a float dtype");
  }
}

static void store(Tensor& t, int64_t i, double value) {
  switch (t.dtype()) {
    case DType::f32:
      t.data<float>()[i] = static_cast<float>(value);
      return;
    case DType::f64:
      t.data<double>()[i] = value;
      return;
    case DType::bf16:
      t.data<bf16_t>()[i] = float_to_bf16(static_cast<float>(value));
      return;
    case DType::f16:
      t.data<f16_t>()[i] = float_to_f16(static_cast<float>(value));
      return;
    default:
      MOE_ASSERT(false, "store: not a float dtype");
  }
}

// f32 <-> bf16, the bf16 weight copy's refresh and the widening of bf16 results, run in a plain
// loop; the other pairs go through double (exact for every pair but f64 -> bf16 and f64 -> f16,
// which round twice, through f32).
void convert(const Tensor& src, Tensor& dst, Stream&) {
  if (src.dtype() == DType::f32 && dst.dtype() == DType::bf16) return round_into(src, dst);
  if (src.dtype() == DType::bf16 && dst.dtype() == DType::f32)
    return widen_into(src, dst.data<float>());
  const int64_t n = src.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) store(dst, i, load(src, i));
}

void add(const Tensor& a, const Tensor& b, Tensor& out, Stream&) {
  storage_dispatch(a.dtype(), "add", [&]<typename T>() {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    const int64_t n = a.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) po[i] = narrow<T>(widen(pa[i]) + widen(pb[i]));
  });
}

void axpy(float alpha, const Tensor& x, Tensor& y, Stream&) {
  storage_dispatch(x.dtype(), "axpy", [&]<typename T>() {
    using C = compute_t<T>;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const int64_t n = x.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      py[i] = narrow<T>(widen(py[i]) + static_cast<C>(alpha) * widen(px[i]));
  });
}

void scale(Tensor& x, float factor, Stream&) {
  storage_dispatch(x.dtype(), "scale", [&]<typename T>() {
    using C = compute_t<T>;
    T* px = x.data<T>();
    const int64_t n = x.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) px[i] = narrow<T>(widen(px[i]) * static_cast<C>(factor));
  });
}

void sum_of_squares_into(const Tensor& x, Tensor& total, Stream& stream) {
  total.data<double>()[0] += sum_of_squares(x, stream);
}

double sum_of_squares(const Tensor& x, Stream&) {
  double total = 0;
  storage_dispatch(x.dtype(), "sum_of_squares", [&]<typename T>() {
    const T* px = x.data<T>();
    const int64_t n = x.numel();
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const double v = widen(px[i]);
      total += v * v;
    }
  });
  return total;
}

}  // namespace moe::cpu
