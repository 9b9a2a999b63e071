// matmul (cuBLASLt) against the CPU: every transpose combination, batched, odd sizes, beta
// accumulation, k = 0, misaligned row views, and bf16 inputs with a bf16 or an f32 output (the
// f32 output is how bf16 activations accumulate weight gradients). Tolerances: inputs are rounded
// identically for both backends, bf16 products are exact in f32, so only the f32 accumulation
// order differs: k eps of f32 (a wrong operand order or transpose is off by O(1)); a bf16 output
// adds one rounding, within one bf16 eps.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/cuda_compare.h"
#include "tests/support/gradcheck.h"

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

}  // namespace
}  // namespace moe
