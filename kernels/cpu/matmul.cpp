// GEMM on the CPU through cblas (OpenBLAS): sgemm for f32, dgemm for f64, one call per batch entry.
// Backward is two GEMMs (kernels/matmul_adjoint.h).
// bf16 operands (as kernels/cuda/matmul.cu's cuBLASLt with f32 compute): a and b are widened to
// f32 (exact, so every product is exact in f32) and the same sgemm accumulates in f32,
// alpha * ab + beta * c included. A bf16 c is widened before and rounded once after, the only
// rounding point; an f32 c (a weight gradient under bf16 activations) is accumulated in place and
// never rounds to bf16.
#include <cblas.h>

#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"
#include "kernels/matmul_adjoint.h"

namespace moe::cpu {

namespace {

struct Gemm {
  int64_t batch, m, n, k;
};

Gemm gemm_dims(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const int r = a.ndim() - 2;
  return {r ? a.dim(0) : 1, trans_a ? a.dim(r + 1) : a.dim(r), trans_b ? b.dim(r) : b.dim(r + 1),
          trans_a ? a.dim(r) : a.dim(r + 1)};
}

// c[m,n] = alpha * op(a) op(b) + beta * c, row-major, for each batch entry. lda/ldb are the stored
// row lengths of a and b.
template <typename T>
void gemm(const T* a, const T* b, T* c, int64_t batch, int64_t m, int64_t n, int64_t k,
          bool trans_a, bool trans_b, int64_t lda, int64_t ldb, T alpha, T beta) {
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  for (int64_t i = 0; i < batch; ++i) {
    const T* ai = a + i * m * k;
    const T* bi = b + i * k * n;
    T* ci = c + i * m * n;
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, ai, lda, bi, ldb, beta, ci, n);
    else
      cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, ai, lda, bi, ldb, beta, ci, n);
  }
}

// t's values in f32, in `buffer`: a per-thread buffer keeps its pages from call to call, where a
// fresh vector above malloc's mmap threshold would fault in every page again. The buffers keep
// their largest size (the largest bf16 GEMM operand, per thread) for the life of the process,
// outside the host allocator's count.
const float* widened_in(const Tensor& t, std::vector<float>& buffer) {
  buffer.resize(static_cast<size_t>(t.numel()));
  widen_into(t, buffer.data());
  return buffer.data();
}

// bf16 a and b; c bf16 or f32; g.k > 0.
void bf16_matmul(const Tensor& a, const Tensor& b, Tensor& c, const Gemm& g, bool trans_a,
                 bool trans_b, float alpha, float beta) {
  thread_local std::vector<float> a_buffer, b_buffer, c_buffer;
  const float* a32 = widened_in(a, a_buffer);
  const float* b32 = widened_in(b, b_buffer);
  const auto run = [&](float* c32) {
    gemm<float>(a32, b32, c32, g.batch, g.m, g.n, g.k, trans_a, trans_b, trans_a ? g.m : g.k,
                trans_b ? g.k : g.n, alpha, beta);
  };
  if (c.dtype() == DType::f32) return run(c.data<float>());
  if (beta != 0)
    widened_in(c, c_buffer);
  else
    c_buffer.resize(static_cast<size_t>(c.numel()));  // sgemm ignores c when beta is 0
  run(c_buffer.data());
  round_into(c_buffer.data(), c);
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, Tensor& c, bool trans_a, bool trans_b, float alpha,
            float beta, Stream&) {
  const Gemm g = gemm_dims(a, b, trans_a, trans_b);
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {  // an empty sum: c = beta * c
    storage_dispatch(c.dtype(), "matmul", [&]<typename T>() {
      using C = compute_t<T>;
      T* pc = c.data<T>();
      for (int64_t i = 0; i < c.numel(); ++i)
        pc[i] = narrow<T>(beta == 0 ? C(0) : static_cast<C>(beta) * widen(pc[i]));
    });
    return;
  }
  if (a.dtype() == DType::bf16) return bf16_matmul(a, b, c, g, trans_a, trans_b, alpha, beta);
  float_dispatch(a.dtype(), "matmul", [&]<typename T>() {
    gemm<T>(a.data<T>(), b.data<T>(), c.data<T>(), g.batch, g.m, g.n, g.k, trans_a, trans_b,
            trans_a ? g.m : g.k, trans_b ? g.k : g.n, alpha, beta);
  });
}

void matmul_backward(const Tensor& a, const Tensor& b, const Tensor& dc, Tensor* da, Tensor* db,
                     bool trans_a, bool trans_b, Stream& stream) {
  ops::matmul_adjoint(matmul, a, b, dc, da, db, trans_a, trans_b, stream);
}

}  // namespace moe::cpu
