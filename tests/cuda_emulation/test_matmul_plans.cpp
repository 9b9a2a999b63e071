// How matmul.cu keeps its cuBLASLt plans, counted by the emulated cuBLASLt (what the library was
// asked; a GPU gives no such counts): a repeated problem makes no descriptor and asks no
// heuristic again; expert GEMMs whose row counts share a size bucket ask the heuristic once and
// still compute their own sizes; the plans stay bounded however many sizes come.
#include <gtest/gtest.h>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/ops.h"
#include "tests/cuda_emulation/shim/cublasLt.h"
#include "tests/support/cuda_compare.h"
#include "tests/support/gradcheck.h"

namespace moe {
namespace {

using testing::random_tensor;
using testing::to_device;

using CudaMatmulPlans = testing::CudaTest;

// c = a b^T on the device, as an expert's GEMM of `rows` tokens, checked against the host.
void expert_gemm(Stream& gpu, int64_t rows, int64_t hidden, int64_t d_model) {
  const Tensor a = random_tensor({rows, d_model}, DType::f32, rows);
  const Tensor b = random_tensor({hidden, d_model}, DType::f32, 7);
  Stream host;
  Tensor expected = Tensor::empty({rows, hidden}, DType::f32);
  ops::matmul(a, b, expected, false, true, 1.0f, 0.0f, host);
  Tensor c = Tensor::empty({rows, hidden}, DType::f32, Device::cuda(0));
  ops::matmul(to_device(a, DType::f32), to_device(b, DType::f32), c, false, true, 1.0f, 0.0f, gpu);
  EXPECT_TRUE(testing::matches_cpu("matmul", c, expected, DType::f32, d_model + 4.0))
      << rows << " rows";
}

TEST_F(CudaMatmulPlans, ARepeatedProblemReusesItsPlan) {
  expert_gemm(gpu, 40, 24, 16);
  const EmulatedCublasLtCounts first = emulated_cublaslt_counts();
  for (int i = 0; i < 3; ++i) expert_gemm(gpu, 40, 24, 16);
  const EmulatedCublasLtCounts later = emulated_cublaslt_counts();
  EXPECT_EQ(later.descriptors_made, first.descriptors_made);
  EXPECT_EQ(later.heuristic_queries, first.heuristic_queries);
}

TEST_F(CudaMatmulPlans, RowCountsOfOneBucketAskTheHeuristicOnce) {
  const int64_t before = emulated_cublaslt_counts().heuristic_queries;
  for (int64_t rows = 257; rows <= 320; rows += 9) expert_gemm(gpu, rows, 24, 16);  // bucket 320
  EXPECT_EQ(emulated_cublaslt_counts().heuristic_queries, before + 1);
  expert_gemm(gpu, 321, 24, 16);  // the next bucket, 384
  EXPECT_EQ(emulated_cublaslt_counts().heuristic_queries, before + 2);
}

TEST_F(CudaMatmulPlans, ThePlansStayBounded) {
  const int64_t live_before = emulated_cublaslt_counts().descriptors_live;
  for (int64_t rows = 1; rows <= 3 * static_cast<int64_t>(cuda::kMatmulPlans); ++rows) {
    Tensor a = Tensor::empty({rows, 2}, DType::f32, Device::cuda(0));
    Tensor b = Tensor::empty({2, 2}, DType::f32, Device::cuda(0));
    ops::fill(a, 1.0, gpu);
    ops::fill(b, 1.0, gpu);
    Tensor c = Tensor::empty({rows, 2}, DType::f32, Device::cuda(0));
    ops::matmul(a, b, c, false, false, 1.0f, 0.0f, gpu);
  }
  // Four descriptors a plan: an operation and three layouts.
  EXPECT_LE(emulated_cublaslt_counts().descriptors_live,
            live_before + 4 * static_cast<int64_t>(cuda::kMatmulPlans));
}

}  // namespace
}  // namespace moe
