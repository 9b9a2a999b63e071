// Causal grouped-query attention on CUDA against the CPU: forward (out, lse) and backward (dq, dk,
// dv) in f32 and bf16, multi-head and grouped (Hq = 4 Hkv), sequences that are not a multiple of
// the 32-row tiles, head dims from 16 to 300 (above 256 the CUDA kernels split the columns into
// chunks), every output pre-filled with NaN (all are assigned), and a bitwise repeatable backward.
//
// Both backends see the same rounded inputs. The backward gets the CPU forward's out (rounded to
// the dtype) and lse (f32, the dtype lse has on CUDA) on both backends, so it is checked on its
// own. Tolerances, in multiples of the dtype's epsilon:
// - f32: both compute in f32 (the CPU on GEMM tiles, kernels/cpu/attention_f32.cpp, its errors
//   ~1e-6 of the largest output in tests/unit/kernels/test_attention.cpp), in different orders. An
//   output element sums `terms` products, each with an hd-long dot product inside (a score, or
//   dout . v); rounding errors grow like the square root of that length: 4 sqrt(hd * terms). terms
//   = T for the forward, T * group for the backward (dk and dv sum over the queries of every head
//   of the group). A wrong mask, scale or head mapping is off by O(1e-2) or more, far above these
//   (at most ~1e-4).
// - bf16: both backends compute in f32 from the same values, so the difference is the GPU's one
//   rounding of its f32 result to bf16 (within one ulp, <= 1 eps * |expected|, when the two f32
//   values straddle a rounding boundary) plus the f32 error above (~0.01 bf16 eps): 2 eps. lse is
//   f32 in both runs and gets the f32 tolerance.
#include <cmath>
#include <limits>
#include <string>

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
using testing::to_host;

using CudaAttention = testing::CudaTest;

struct Case {
  int64_t batch, seq, q_heads, kv_heads, head_dim;
  Shape q() const { return {batch, seq, q_heads, head_dim}; }
  Shape kv() const { return {batch, seq, kv_heads, head_dim}; }
  Shape stats() const { return {batch, q_heads, seq}; }
  float scale() const { return 1.0f / std::sqrt(static_cast<float>(head_dim)); }
  double f32_multiple(int64_t terms) const {
    return 4.0 * std::sqrt(static_cast<double>(head_dim * terms));
  }
};

// B = 2 unless the head dim is large; T = 77 spans three tiles with a partial last one.
const Case kCases[] = {
    {2, 77, 3, 3, 16},   // multi-head
    {2, 77, 8, 2, 64},   // grouped, 4 query heads per kv head
    {2, 77, 4, 1, 128},  // grouped, one kv head
    {2, 45, 4, 2, 80},   // head dim not a multiple of 32
    {1, 40, 4, 1, 300},  // head dim above 256: two column chunks
    {2, 1, 4, 1, 64},    // a single token
    {2, 32, 2, 2, 32},   // exactly one tile
};

const DType kDtypes[] = {DType::f32, DType::bf16};

struct Inputs {
  Tensor q, k, v, dout;  // host f32, rounded to the dtype under test
};

Inputs make_inputs(const Case& c, DType dtype) {
  // q spans [-2, 2] so that scores vary enough for the running max to move between key tiles.
  return {rounded(random_tensor(c.q(), DType::f32, 11, -2.0, 2.0), dtype),
          rounded(random_tensor(c.kv(), DType::f32, 12), dtype),
          rounded(random_tensor(c.kv(), DType::f32, 13), dtype),
          rounded(random_tensor(c.q(), DType::f32, 14), dtype)};
}

// A device tensor filled with NaN: any element an op leaves unwritten fails the comparison.
Tensor nan_device(Shape shape, DType dtype, Stream& gpu) {
  Tensor t = Tensor::empty(shape, dtype, Device::cuda(0));
  ops::fill(t, std::numeric_limits<double>::quiet_NaN(), gpu);
  return t;
}

std::string describe(const Case& c, DType dtype) {
  return std::string(dtype_name(dtype)) + " B " + std::to_string(c.batch) + " T " +
         std::to_string(c.seq) + " Hq " + std::to_string(c.q_heads) + " Hkv " +
         std::to_string(c.kv_heads) + " hd " + std::to_string(c.head_dim);
}

struct Reference {
  Tensor out, lse;  // the CPU forward, f32
};

Reference cpu_forward(const Case& c, const Inputs& in) {
  Stream host;
  Reference r{Tensor::empty(c.q(), DType::f32), Tensor::empty(c.stats(), DType::f32)};
  ops::attention_forward(in.q, in.k, in.v, c.scale(), r.out, r.lse, host);
  return r;
}

struct Grads {
  Tensor dq, dk, dv;
};

// Backward on the GPU from host inputs, with every gradient pre-filled with NaN.
Grads gpu_backward(const Case& c, const Inputs& in, const Tensor& out, const Tensor& lse,
                   DType dtype, Stream& gpu) {
  Grads g{nan_device(c.q(), dtype, gpu), nan_device(c.kv(), dtype, gpu),
          nan_device(c.kv(), dtype, gpu)};
  ops::attention_backward(to_device(in.dout, dtype), to_device(in.q, dtype), to_device(in.k, dtype),
                          to_device(in.v, dtype), to_device(out, dtype), to_device(lse, DType::f32),
                          c.scale(), g.dq, g.dk, g.dv, gpu);
  return g;
}

TEST_F(CudaAttention, ForwardMatchesCpu) {
  for (DType dtype : kDtypes)
    for (const Case& c : kCases) {
      SCOPED_TRACE(describe(c, dtype));
      const Inputs in = make_inputs(c, dtype);
      const Reference expected = cpu_forward(c, in);
      Tensor out = nan_device(c.q(), dtype, gpu);
      Tensor lse = nan_device(c.stats(), DType::f32, gpu);
      ops::attention_forward(to_device(in.q, dtype), to_device(in.k, dtype), to_device(in.v, dtype),
                             c.scale(), out, lse, gpu);
      const double f32_multiple = c.f32_multiple(c.seq);
      EXPECT_TRUE(matches_cpu("attention out", out, expected.out, dtype,
                              dtype == DType::f32 ? f32_multiple : 2.0));
      EXPECT_TRUE(matches_cpu("attention lse", lse, expected.lse, DType::f32, f32_multiple));
    }
}

TEST_F(CudaAttention, BackwardMatchesCpu) {
  for (DType dtype : kDtypes)
    for (const Case& c : kCases) {
      SCOPED_TRACE(describe(c, dtype));
      const Inputs in = make_inputs(c, dtype);
      const Reference forward = cpu_forward(c, in);
      const Tensor out = rounded(forward.out, dtype);
      Stream host;
      Grads expected{Tensor::empty(c.q(), DType::f32), Tensor::empty(c.kv(), DType::f32),
                     Tensor::empty(c.kv(), DType::f32)};
      ops::attention_backward(in.dout, in.q, in.k, in.v, out, forward.lse, c.scale(), expected.dq,
                              expected.dk, expected.dv, host);
      const Grads got = gpu_backward(c, in, out, forward.lse, dtype, gpu);
      const double multiple =
          dtype == DType::f32 ? c.f32_multiple(c.seq * (c.q_heads / c.kv_heads)) : 2.0;
      EXPECT_TRUE(matches_cpu("attention dq", got.dq, expected.dq, dtype, multiple));
      EXPECT_TRUE(matches_cpu("attention dk", got.dk, expected.dk, dtype, multiple));
      EXPECT_TRUE(matches_cpu("attention dv", got.dv, expected.dv, dtype, multiple));
    }
}

TEST_F(CudaAttention, BackwardIsBitwiseRepeatable) {
  const Case c{2, 77, 8, 2, 64};
  for (DType dtype : kDtypes) {
    SCOPED_TRACE(describe(c, dtype));
    const Inputs in = make_inputs(c, dtype);
    const Reference forward = cpu_forward(c, in);
    const Tensor out = rounded(forward.out, dtype);
    const Grads first = gpu_backward(c, in, out, forward.lse, dtype, gpu);
    const Grads second = gpu_backward(c, in, out, forward.lse, dtype, gpu);
    EXPECT_TRUE(testing::all_close(to_host(second.dq), to_host(first.dq), 0, 0));
    EXPECT_TRUE(testing::all_close(to_host(second.dk), to_host(first.dk), 0, 0));
    EXPECT_TRUE(testing::all_close(to_host(second.dv), to_host(first.dv), 0, 0));
  }
}

}  // namespace
}  // namespace moe
