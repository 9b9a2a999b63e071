// matmul (cuBLASLt) against the CPU: every transpose combination, batched, odd sizes, beta
// accumulation, k = 0, misaligned row views, and bf16 inputs with a bf16 or an f32 output (the
// f32 output is how bf16 activations accumulate weight gradients). Tolerances: inputs are rounded
// identically for both backends, bf16 products are exact in f32, so only the f32 accumulation
// order differs: k eps of f32 (a wrong operand order or transpose is off by O(1)); a bf16 output
// adds one rounding, within one bf16 eps.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/cuda_compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::matches_cpu;
using testing::random_tensor;
using testing::rounded;
using testing::to_device;

using CudaMatmul = testing::CudaTest;

struct Case {
  DType in, out;
};

Shape stored(int64_t batch, int64_t rows, int64_t cols, bool transposed) {
  const int64_t r = transposed ? cols : rows, c = transposed ? rows : cols;
  return batch ? Shape{batch, r, c} : Shape{r, c};
}

void expect_matmul_matches(Stream& gpu, Case dtypes, int64_t batch, int64_t m, int64_t n, int64_t k,
                           bool trans_a, bool trans_b, float alpha, float beta) {
  Stream host;
  const Tensor a = rounded(random_tensor(stored(batch, m, k, trans_a), DType::f32, 1), dtypes.in);
  const Tensor b = rounded(random_tensor(stored(batch, k, n, trans_b), DType::f32, 2), dtypes.in);
  const Tensor c0 = rounded(random_tensor(stored(batch, m, n, false), DType::f32, 3), dtypes.out);
  Tensor expected = c0.clone();
  ops::matmul(a, b, expected, trans_a, trans_b, alpha, beta, host);
  Tensor c = to_device(c0, dtypes.out);
  ops::matmul(to_device(a, dtypes.in), to_device(b, dtypes.in), c, trans_a, trans_b, alpha, beta,
              gpu);
  const double multiple = dtypes.out == DType::f32 ? static_cast<double>(k) + 4 : 1.0;
  EXPECT_TRUE(matches_cpu("matmul", c, expected, dtypes.out, multiple))
      << "in " << dtype_name(dtypes.in) << " m " << m << " n " << n << " k " << k << " trans "
      << trans_a << trans_b << " batch " << batch;
}

const Case kCases[] = {
    {DType::f32, DType::f32}, {DType::bf16, DType::bf16}, {DType::bf16, DType::f32}};

TEST_F(CudaMatmul, EveryTransposeCombinationAndDtype) {
  for (const Case& dtypes : kCases)
    for (bool trans_a : {false, true})
      for (bool trans_b : {false, true})
        expect_matmul_matches(gpu, dtypes, 0, 37, 129, 300, trans_a, trans_b, 1.0f, 0.0f);
}

TEST_F(CudaMatmul, BatchedAlphaAndBetaAccumulate) {
  for (const Case& dtypes : kCases) {
    expect_matmul_matches(gpu, dtypes, 3, 64, 48, 80, false, true, 0.5f, 1.0f);
    expect_matmul_matches(gpu, dtypes, 2, 5, 7, 33, true, false, -1.0f, 0.25f);
  }
}

TEST_F(CudaMatmul, EmptyInnerDimensionScalesC) {
  for (const Case& dtypes : kCases) {
    expect_matmul_matches(gpu, dtypes, 0, 9, 11, 0, false, false, 1.0f, 0.5f);
    expect_matmul_matches(gpu, dtypes, 0, 9, 11, 0, false, true, 1.0f, 0.0f);
  }
}

TEST_F(CudaMatmul, RowViewsThatAreNotSixteenByteAligned) {
  // Rows of 13 bf16 elements: narrowing by one row moves the start by 26 bytes.
  const Tensor a_all = rounded(random_tensor({40, 13}, DType::f32, 4), DType::bf16);
  const Tensor b = rounded(random_tensor({21, 13}, DType::f32, 5), DType::bf16);
  Stream host;
  Tensor expected = Tensor::zeros({39, 21}, DType::f32);
  ops::matmul(a_all.narrow(1, 39), b, expected, false, true, 1.0f, 0.0f, host);
  Tensor a_device = to_device(a_all, DType::bf16);
  Tensor c = to_device(expected, DType::f32);
  ops::matmul(a_device.narrow(1, 39), to_device(b, DType::bf16), c, false, true, 1.0f, 0.0f, gpu);
  EXPECT_TRUE(matches_cpu("matmul misaligned", c, expected, DType::f32, 17));
}

TEST_F(CudaMatmul, BackwardAccumulatesIntoF32GradientsFromBf16Activations) {
  // A linear layer: y[N,O] = x[N,I] W[O,I]^T. dx stays bf16; dW accumulates into f32.
  Stream host;
  const int64_t rows = 70, in = 96, out = 40;
  const Tensor x = rounded(random_tensor({rows, in}, DType::f32, 6), DType::bf16);
  const Tensor w = rounded(random_tensor({out, in}, DType::f32, 7), DType::bf16);
  const Tensor dy = rounded(random_tensor({rows, out}, DType::f32, 8), DType::bf16);
  const Tensor dx0 = rounded(random_tensor({rows, in}, DType::f32, 9), DType::bf16);
  const Tensor dw0 = random_tensor({out, in}, DType::f32, 10);
  Tensor dx_expected = dx0.clone(), dw_expected = dw0.clone();
  ops::matmul_backward(x, w, dy, &dx_expected, &dw_expected, false, true, host);
  Tensor dx = to_device(dx0, DType::bf16), dw = to_device(dw0, DType::f32);
  ops::matmul_backward(to_device(x, DType::bf16), to_device(w, DType::bf16),
                       to_device(dy, DType::bf16), &dx, &dw, false, true, gpu);
  EXPECT_TRUE(matches_cpu("matmul_backward dx", dx, dx_expected, DType::bf16, 1));
  EXPECT_TRUE(matches_cpu("matmul_backward dW", dw, dw_expected, DType::f32, rows + 4));
}

// ops::set_matmul_tf32 for a scope, off again at its end.
class Tf32Scope {
 public:
  explicit Tf32Scope(bool on) { ops::set_matmul_tf32(on); }
  ~Tf32Scope() { ops::set_matmul_tf32(false); }
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;
};

// c = a b with a[i,l] = 1 + 2^-17 ((i + 3 l) % 8) and b = 1, k = 64: every partial sum is a
// multiple of 2^-17 below 128, so f32 arithmetic is exact in any order. TF32 keeps 10 mantissa bits
// and reads every a as 1, whether it rounds or truncates, so then c = 64 exactly. The same problem
// is asked off, on, off again: the algorithm cache must tell the two compute types apart.
TEST_F(CudaMatmul, Tf32RoundsF32InputsOnlyWhileOn) {
  const int64_t m = 256, n = 256, k = 64;
  std::vector<float> a_values;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t l = 0; l < k; ++l)
      a_values.push_back(1.0f + std::ldexp(1.0f, -17) * static_cast<float>((i + 3 * l) % 8));
  const Tensor a = Tensor::from_vector<float>({m, k}, a_values);
  const Tensor b = Tensor::from_vector<float>({k, n}, std::vector<float>(k * n, 1.0f));
  Stream host;
  Tensor exact = Tensor::zeros({m, n}, DType::f32);
  ops::matmul(a, b, exact, false, false, 1.0f, 0.0f, host);
  const Tensor tf32 = Tensor::from_vector<float>({m, n}, std::vector<float>(m * n, 64.0f));
  const Tensor device_a = to_device(a, DType::f32), device_b = to_device(b, DType::f32);
  for (bool on : {false, true, false}) {
    const Tf32Scope scope(on);
    Tensor c = to_device(Tensor::zeros({m, n}, DType::f32), DType::f32);
    ops::matmul(device_a, device_b, c, false, false, 1.0f, 0.0f, gpu);
    EXPECT_TRUE(
        matches_cpu(on ? "matmul tf32" : "matmul f32", c, on ? tf32 : exact, DType::f32, 0));
  }
}

// Random f32 inputs in [-1, 1], k = 300, against the CPU's f32 GEMM, M the largest sum of |a b|
// (magnitude, as bf16_tolerance's). Each backend's f32 sum of k products, alpha and beta c is
// within 2 (k + 2) u32 M (gamma_n <= 2 n u32), doubled on the tensor cores, which may truncate.
// With TF32, each input is within 2^-10 of itself relatively (truncated; 2^-11 rounded), so a
// product is within (2^-9 + 2^-20) |a b|.
TEST_F(CudaMatmul, Tf32StaysWithinItsBoundAndF32WithinF32s) {
  const int64_t m = 70, n = 129, k = 300;
  const Tensor a = random_tensor({m, k}, DType::f32, 20), b = random_tensor({n, k}, DType::f32, 21);
  const Tensor c0 = random_tensor({m, n}, DType::f32, 22);
  Stream host;
  Tensor expected = c0.clone();
  ops::matmul(a, b, expected, false, true, 1.0f, 1.0f, host);
  Tensor magnitude = testing::absolute(c0);
  ops::matmul(testing::absolute(a), testing::absolute(b), magnitude, false, true, 1.0f, 1.0f, host);
  const double big_m = testing::max_element(magnitude), u32 = std::ldexp(1.0, -24);
  const double cpu_sum = 2.0 * (k + 2) * u32 * big_m;
  const Tensor device_a = to_device(a, DType::f32), device_b = to_device(b, DType::f32);
  for (bool on : {false, true}) {
    const Tf32Scope scope(on);
    Tensor c = to_device(c0, DType::f32);
    ops::matmul(device_a, device_b, c, false, true, 1.0f, 1.0f, gpu);
    const double bound =
        on ? (std::ldexp(1.0, -9) + std::ldexp(1.0, -20)) * big_m + 3 * cpu_sum : 2 * cpu_sum;
    EXPECT_TRUE(testing::all_close(testing::to_host(c), expected, bound, 0))
        << (on ? "tf32" : "f32") << " bound " << bound;
  }
}

// TF32 concerns f32 inputs only: a bf16 GEMM gives the same bits with it on.
TEST_F(CudaMatmul, Tf32LeavesBf16GemmsAlone) {
  const Tensor a = to_device(random_tensor({37, 96}, DType::f32, 23), DType::bf16);
  const Tensor b = to_device(random_tensor({96, 40}, DType::f32, 24), DType::bf16);
  Tensor off = to_device(Tensor::zeros({37, 40}, DType::f32), DType::f32);
  ops::matmul(a, b, off, false, false, 1.0f, 0.0f, gpu);
  const Tf32Scope scope(true);
  Tensor on = to_device(Tensor::zeros({37, 40}, DType::f32), DType::f32);
  ops::matmul(a, b, on, false, false, 1.0f, 0.0f, gpu);
  EXPECT_TRUE(testing::all_close(testing::to_host(on), testing::to_host(off), 0, 0));
}

}  // namespace
}  // namespace moe
