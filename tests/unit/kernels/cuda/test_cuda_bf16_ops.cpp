// The bf16 training step's ops on CUDA against their CPU bf16 counterparts (the oracle): the same
// bf16 inputs go to both backends, with the dtype combination the bf16 recipe uses for each op
// (bf16 activations; f32 statistics, probs and weight gradients). Two kinds of checks:
// - same_bits: where both backends round at the same points and do the same f32 operations in the
//   same order (copies, conversions, add, axpy, scale, the embedding, the row movers and combine),
//   the outputs must be bit for bit equal.
// - close: elsewhere each backend is within bf16_tolerance(n, magnitude) of the exact result
//   (tolerance.h), n counting the f32 operations on its own longest path (a reduction of length L
//   counts L in any order; the GPU's expf, within 2 ulp, counts 2), so the two are within the sum
//   of their bounds (between_backends). The CPU's counts are its bf16 tests' (tests/unit/kernels).
//   A subtraction x - c inside an exp adds u32 |x - c| of absolute error to the exponent, which is
//   that many u32 of relative error in the result: it counts |x - c|.
// Assigned outputs start as NaN, so an element the kernel forgot fails.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/half.h"
#include "kernels/ops.h"
#include "tests/support/cuda_compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/rope_table.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::max_element;
using testing::random_tensor;
using testing::Tolerance;

// A host tensor's copy on cuda:0, same dtype and bits.
Tensor on_gpu(const Tensor& host) { return testing::to_device(host, host.dtype()); }

// A host tensor full of NaN: an assigned output that the op forgot to write cannot pass.
Tensor nan_host(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  Stream stream;
  ops::fill(t, NAN, stream);
  return t;
}

class CudaBf16Ops : public testing::CudaTest {
 protected:
  Tensor nan_gpu(const Shape& shape, DType dtype) {
    Tensor t = Tensor::empty(shape, dtype, Device::cuda(0));
    ops::fill(t, NAN, gpu);
    return t;
  }
};

// A device tensor back on the host with its own dtype (testing::to_host widens bf16).
Tensor back(const Tensor& device) {
  Tensor host = Tensor::empty(device.shape(), device.dtype());
  Stream stream;
  ops::copy(device, host, stream);
  return host;
}

::testing::AssertionResult same_bits(const char* what, const Tensor& device,
                                     const Tensor& expected) {
  const Tensor got = back(device);
  if (got.dtype() != expected.dtype() || !(got.shape() == expected.shape()))
    return ::testing::AssertionFailure()
           << what << ": got " << got.str() << ", expected " << expected.str();
  const size_t width = dtype_size(got.dtype());
  const auto* g = static_cast<const unsigned char*>(got.raw());
  const auto* e = static_cast<const unsigned char*>(expected.raw());
  int64_t differing = 0, first = -1;
  for (int64_t i = 0; i < got.numel(); ++i)
    if (std::memcmp(g + i * width, e + i * width, width) != 0 && differing++ == 0) first = i;
  std::printf("[cuda vs cpu bf16] %-34s %-4s %lld of %lld elements differ in their bits\n", what,
              dtype_name(got.dtype()), static_cast<long long>(differing),
              static_cast<long long>(got.numel()));
  if (differing == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << differing << " of " << got.numel() << " elements differ in their bits;"
         << " the first at " << first << ": got " << testing::element_as_double(got, first)
         << ", expected " << testing::element_as_double(expected, first);
}

// Each backend within bf16_tolerance(its ops, magnitude) of the exact y: |c - y| <= r |y| + A_c and
// |e - y| <= r |y| + A_e, r = u for a bf16 output and 0 for an f32 one (its f32 rounding is among
// the counted operations). Then |y| <= (|e| + A_e) / (1 - r) gives
// |c - e| <= 2r / (1 - r) |e| + (A_c + A_e) (1 + r) / (1 - r).
Tolerance between_backends(int64_t cpu_ops, int64_t cuda_ops, double magnitude, DType output) {
  const Tolerance cpu = testing::bf16_tolerance(cpu_ops, magnitude);
  const Tolerance cuda = testing::bf16_tolerance(cuda_ops, magnitude);
  const double r = output == DType::bf16 ? cpu.rtol : 0.0;
  return {(cpu.atol + cuda.atol) * (1 + r) / (1 - r), 2 * r / (1 - r)};
}

::testing::AssertionResult close(const char* what, const Tensor& device, const Tensor& expected,
                                 const Tolerance& tol) {
  const Tensor got = back(device);
  double worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = testing::element_as_double(got, i);
    const double e = testing::element_as_double(expected, i);
    worst = std::max(worst, std::fabs(g - e) / (tol.atol + tol.rtol * std::fabs(e)));
  }
  std::printf("[cuda vs cpu bf16] %-34s %-4s worst |diff| is %.3g of its tolerance\n", what,
              dtype_name(got.dtype()), worst);
  return testing::all_close(got, expected, tol.atol, tol.rtol) << " [" << what << "]";
}

// --- elementwise and conversions: bit for bit ----------------------------------------------

TEST_F(CudaBf16Ops, ConvertFillAndCopyMatchTheCpuBitForBit) {
  std::vector<float> values = random_tensor({10000}, DType::f32, 1, -300, 300).to_vector<float>();
  for (float v : {0.0f, -0.0f, 1.00390625f, 1.01171875f, 3.0e38f, -1e-40f, INFINITY})
    values.push_back(v);
  const Shape shape{static_cast<int64_t>(values.size())};
  const Tensor f32 = Tensor::from_vector<float>(shape, values);
  Stream host;
  Tensor narrowed = nan_host(shape, DType::bf16);
  ops::convert(f32, narrowed, host);
  Tensor narrowed_gpu = nan_gpu(shape, DType::bf16);
  ops::convert(on_gpu(f32), narrowed_gpu, gpu);
  EXPECT_TRUE(same_bits("convert f32 -> bf16", narrowed_gpu, narrowed));

  Tensor widened = nan_host(shape, DType::f32), widened_gpu = nan_gpu(shape, DType::f32);
  ops::convert(narrowed, widened, host);
  ops::convert(on_gpu(narrowed), widened_gpu, gpu);
  EXPECT_TRUE(same_bits("convert bf16 -> f32", widened_gpu, widened));

  for (double value : {0.1, -3.7e5, 0.0}) {
    Tensor filled = nan_host(shape, DType::bf16), filled_gpu = nan_gpu(shape, DType::bf16);
    ops::fill(filled, value, host);
    ops::fill(filled_gpu, value, gpu);
    EXPECT_TRUE(same_bits("fill", filled_gpu, filled)) << value;
  }

  Tensor copied_gpu = nan_gpu(shape, DType::bf16);
  ops::copy(on_gpu(narrowed), copied_gpu, gpu);
  EXPECT_TRUE(same_bits("copy", copied_gpu, narrowed));
}

TEST_F(CudaBf16Ops, AddAxpyScaleMatchTheCpuBitForBit) {
  const Shape shape{100003};
  const Tensor a = random_tensor(shape, DType::bf16, 2), b = random_tensor(shape, DType::bf16, 3);
  Stream host;
  Tensor sum = nan_host(shape, DType::bf16), sum_gpu = nan_gpu(shape, DType::bf16);
  ops::add(a, b, sum, host);
  ops::add(on_gpu(a), on_gpu(b), sum_gpu, gpu);
  EXPECT_TRUE(same_bits("add", sum_gpu, sum));

  Tensor y = b.clone(), y_gpu = on_gpu(b);
  ops::axpy(-0.7f, a, y, host);
  ops::axpy(-0.7f, on_gpu(a), y_gpu, gpu);
  EXPECT_TRUE(same_bits("axpy", y_gpu, y));

  Tensor scaled = a.clone(), scaled_gpu = on_gpu(a);
  ops::scale(scaled, 1.3f, host);
  ops::scale(scaled_gpu, 1.3f, gpu);
  EXPECT_TRUE(same_bits("scale", scaled_gpu, scaled));
}

// MLA's per-head parts: column blocks copied between [N, *] tensors (dst's other columns kept),
// and its shared RoPE key spread over heads and summed back (sums in f64, one rounding each).
TEST_F(CudaBf16Ops, CopyColumnsAndGroupSumBroadcastMatchTheCpuBitForBit) {
  const int64_t rows = 777, group = 5;
  const Tensor src = random_tensor({rows, 41}, DType::bf16, 4);
  const Tensor dst_start = random_tensor({rows, 29}, DType::bf16, 5);
  Stream host;
  Tensor dst = dst_start.clone(), dst_gpu = on_gpu(dst_start);
  ops::copy_columns(src, 7, dst, 3, 19, host);
  ops::copy_columns(on_gpu(src), 7, dst_gpu, 3, 19, gpu);
  EXPECT_TRUE(same_bits("copy_columns", dst_gpu, dst));

  Tensor sums = nan_host({rows / 7, 41}, DType::bf16),
         sums_gpu = nan_gpu({rows / 7, 41}, DType::bf16);
  ops::group_sum(src, 7, sums, host);
  ops::group_sum(on_gpu(src), 7, sums_gpu, gpu);
  EXPECT_TRUE(same_bits("group_sum", sums_gpu, sums));

  const Tensor w = random_tensor({rows, 8}, DType::bf16, 6);
  Tensor spread = nan_host({rows * group, 8}, DType::bf16);
  Tensor spread_gpu = nan_gpu({rows * group, 8}, DType::bf16);
  ops::group_broadcast(w, group, spread, host);
  ops::group_broadcast(on_gpu(w), group, spread_gpu, gpu);
  EXPECT_TRUE(same_bits("group_broadcast", spread_gpu, spread));
}

// --- embedding: bf16 table and dout, f32 or bf16 dtable ----------------------------------------

// ids in [0, 60) on a shard holding [10, 50), a third of the tokens on id 25: both backends add a
// row's tokens in token order in f32, starting from dtable's value.
TEST_F(CudaBf16Ops, EmbeddingMatchesTheCpuBitForBit) {
  const int64_t tokens = 300, rows = 40, width = 515, vocab_start = 10;
  std::vector<int32_t> id_values;
  for (int64_t n = 0; n < tokens; ++n)
    id_values.push_back(static_cast<int32_t>(n % 3 == 0 ? 25 : n * 37 % 60));
  const Tensor ids = Tensor::from_vector<int32_t>({tokens}, id_values);
  const Tensor table = random_tensor({rows, width}, DType::bf16, 4);
  Stream host;
  Tensor out = nan_host({tokens, width}, DType::bf16),
         out_gpu = nan_gpu({tokens, width}, DType::bf16);
  ops::embedding_forward(ids, table, vocab_start, out, host);
  ops::embedding_forward(on_gpu(ids), on_gpu(table), vocab_start, out_gpu, gpu);
  EXPECT_TRUE(same_bits("embedding_forward", out_gpu, out));

  const Tensor dout = random_tensor({tokens, width}, DType::bf16, 5);
  for (DType dtable_dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtable_dtype));
    Tensor dtable = random_tensor({rows, width}, dtable_dtype, 6);
    Tensor dtable_gpu = on_gpu(dtable);
    ops::embedding_backward(ids, dout, vocab_start, dtable, host);
    ops::embedding_backward(on_gpu(ids), on_gpu(dout), vocab_start, dtable_gpu, gpu);
    EXPECT_TRUE(same_bits("embedding_backward dtable", dtable_gpu, dtable));
  }
}

// --- row movers and combine: bit for bit ------------------------------------------------------

// k = 3 (so that the order of a token's three rows matters), 5 experts, slots sorted by expert on
// the CPU and every seventh one dropped (as a capacity would), probs f32.
TEST_F(CudaBf16Ops, PermuteUnpermuteAndCombineMatchTheCpuBitForBit) {
  const int64_t tokens = 37, width = 1029;
  const int k = 3, experts = 5;
  std::vector<int32_t> expert_values;
  for (int64_t s = 0; s < tokens * k; ++s) expert_values.push_back(static_cast<int32_t>(s * 7 % 5));
  const Tensor expert_ids = Tensor::from_vector<int32_t>({tokens, k}, expert_values);
  Stream host;
  Tensor sorted = Tensor::empty({tokens * k}, DType::i32),
         counts = Tensor::empty({experts}, DType::i64);
  ops::moe_sort_by_expert(expert_ids, experts, sorted, counts, host);
  std::vector<int32_t> kept;
  for (int64_t r = 0; r < sorted.numel(); ++r)
    if (r % 7 != 3) kept.push_back(sorted.data<int32_t>()[r]);
  const int64_t rows = static_cast<int64_t>(kept.size()), slots = tokens * k;
  const Tensor listed = Tensor::from_vector<int32_t>({rows}, kept);
  const Tensor listed_gpu = on_gpu(listed);

  const Tensor x = random_tensor({tokens, width}, DType::bf16, 7);
  Tensor permuted = nan_host({rows, width}, DType::bf16);
  Tensor permuted_gpu = nan_gpu({rows, width}, DType::bf16);
  ops::moe_permute(x, listed, k, permuted, host);
  ops::moe_permute(on_gpu(x), listed_gpu, k, permuted_gpu, gpu);
  EXPECT_TRUE(same_bits("moe_permute", permuted_gpu, permuted));

  const Tensor dpermuted = random_tensor({rows, width}, DType::bf16, 8);
  Tensor dx = nan_host(x.shape(), DType::bf16), dx_gpu = nan_gpu(x.shape(), DType::bf16);
  ops::moe_permute_backward(dpermuted, listed, k, dx, host);
  ops::moe_permute_backward(on_gpu(dpermuted), listed_gpu, k, dx_gpu, gpu);
  EXPECT_TRUE(same_bits("moe_permute_backward", dx_gpu, dx));

  const Tensor y = random_tensor({rows, width}, DType::bf16, 9);
  Tensor y_slots = nan_host({slots, width}, DType::bf16);
  Tensor y_slots_gpu = nan_gpu({slots, width}, DType::bf16);
  ops::moe_unpermute(y, listed, y_slots, host);
  ops::moe_unpermute(on_gpu(y), listed_gpu, y_slots_gpu, gpu);
  EXPECT_TRUE(same_bits("moe_unpermute", y_slots_gpu, y_slots));

  const Tensor dy_slots = random_tensor({slots, width}, DType::bf16, 10);
  Tensor dy = nan_host({rows, width}, DType::bf16), dy_gpu = nan_gpu({rows, width}, DType::bf16);
  ops::moe_unpermute_backward(dy_slots, listed, dy, host);
  ops::moe_unpermute_backward(on_gpu(dy_slots), listed_gpu, dy_gpu, gpu);
  EXPECT_TRUE(same_bits("moe_unpermute_backward", dy_gpu, dy));

  const Tensor probs = random_tensor({tokens, k}, DType::f32, 11, 0, 1);
  Tensor combined = nan_host({tokens, width}, DType::bf16);
  Tensor combined_gpu = nan_gpu({tokens, width}, DType::bf16);
  ops::moe_combine(y_slots, probs, combined, host);
  ops::moe_combine(on_gpu(y_slots), on_gpu(probs), combined_gpu, gpu);
  EXPECT_TRUE(same_bits("moe_combine", combined_gpu, combined));

  // dy_slots = p * dout: one f32 product, bit for bit. dprobs: a width-long dot product in double
  // on the CPU (1 rounding), in f32 on the GPU (width + 1); terms |dout y| <= 1.
  const Tensor dcombined = random_tensor({tokens, width}, DType::bf16, 12);
  Tensor dy_slots_out = nan_host({slots, width}, DType::bf16);
  Tensor dy_slots_gpu = nan_gpu({slots, width}, DType::bf16);
  Tensor dprobs = nan_host(probs.shape(), DType::f32),
         dprobs_gpu = nan_gpu(probs.shape(), DType::f32);
  ops::moe_combine_backward(dcombined, y_slots, probs, dy_slots_out, dprobs, host);
  ops::moe_combine_backward(on_gpu(dcombined), on_gpu(y_slots), on_gpu(probs), dy_slots_gpu,
                            dprobs_gpu, gpu);
  EXPECT_TRUE(same_bits("moe_combine_backward dy_slots", dy_slots_gpu, dy_slots_out));
  EXPECT_TRUE(close("moe_combine_backward dprobs", dprobs_gpu, dprobs,
                    between_backends(1, width + 1, static_cast<double>(width), DType::f32)));
}

// --- matmul: bf16 operands, f32 accumulation --------------------------------------------------

// c = alpha op(a) op(b) + beta c, a bf16 or f32 c. Products of bf16 values are exact in f32; the
// sums are k + 2 f32 operations on the CPU (k products added, alpha, beta c); the tensor cores may
// truncate rather than round inside their accumulation (twice the error per operation): 2 (k + 2)
// on the GPU. Magnitude: the largest |alpha| |a| |b| + |beta c|, from the same product of absolute
// values in f64.
void expect_matmul_matches(Stream& gpu, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b,
                           float alpha, float beta, DType c_dtype) {
  Stream host;
  const Shape a_shape = trans_a ? Shape{k, m} : Shape{m, k};
  const Shape b_shape = trans_b ? Shape{n, k} : Shape{k, n};
  const Tensor a = random_tensor(a_shape, DType::bf16, 13),
               b = random_tensor(b_shape, DType::bf16, 14);
  const Tensor c0 = random_tensor({m, n}, c_dtype, 15);
  Tensor c = c0.clone(), c_gpu = on_gpu(c0);
  ops::matmul(a, b, c, trans_a, trans_b, alpha, beta, host);
  ops::matmul(on_gpu(a), on_gpu(b), c_gpu, trans_a, trans_b, alpha, beta, gpu);
  Tensor magnitude = testing::absolute(c0);
  ops::matmul(testing::absolute(a), testing::absolute(b), magnitude, trans_a, trans_b,
              std::fabs(alpha), std::fabs(beta), host);
  const std::string what = std::string("matmul bf16 -> ") + dtype_name(c_dtype) +
                           (trans_a ? " ta" : "") + (trans_b ? " tb" : "") +
                           (beta != 0 ? " beta" : "");
  EXPECT_TRUE(close(what.c_str(), c_gpu, c,
                    between_backends(k + 2, 2 * (k + 2), max_element(magnitude), c_dtype)));
}

TEST_F(CudaBf16Ops, MatmulMatchesTheCpuForBf16AndF32Outputs) {
  for (bool trans_a : {false, true})
    for (bool trans_b : {false, true}) {
      expect_matmul_matches(gpu, 37, 129, 300, trans_a, trans_b, 1.0f, 0.0f, DType::bf16);
      expect_matmul_matches(gpu, 37, 129, 300, trans_a, trans_b, 1.0f, 1.0f, DType::bf16);
      expect_matmul_matches(gpu, 37, 129, 300, trans_a, trans_b, 1.0f, 1.0f, DType::f32);
    }
  expect_matmul_matches(gpu, 64, 48, 80, false, true, 0.5f, 0.0f, DType::f32);
}

// A linear layer y[N,O] = x[N,I] W[O,I]^T in the bf16 recipe: dx bf16 (assigned through beta 1 on
// zeros), dW accumulated into an f32 gradient. dx sums O products, dW sums N.
TEST_F(CudaBf16Ops, MatmulBackwardAccumulatesF32WeightGradients) {
  const int64_t rows = 70, in = 96, out = 40;
  const Tensor x = random_tensor({rows, in}, DType::bf16, 16);
  const Tensor w = random_tensor({out, in}, DType::bf16, 17);
  const Tensor dy = random_tensor({rows, out}, DType::bf16, 18);
  const Tensor dw0 = random_tensor({out, in}, DType::f32, 19);
  Stream host;
  Tensor dx = Tensor::zeros({rows, in}, DType::bf16), dw = dw0.clone();
  Tensor dx_gpu = on_gpu(dx), dw_gpu = on_gpu(dw0);
  ops::matmul_backward(x, w, dy, &dx, &dw, false, true, host);
  ops::matmul_backward(on_gpu(x), on_gpu(w), on_gpu(dy), &dx_gpu, &dw_gpu, false, true, gpu);
  // |x|, |w|, |dy| <= 1: |dx| terms add up to at most out, |dW| ones to rows + |dW0| <= rows + 1.
  EXPECT_TRUE(close("matmul_backward dx", dx_gpu, dx,
                    between_backends(out + 2, 2 * (out + 2), out, DType::bf16)));
  EXPECT_TRUE(close("matmul_backward dW", dw_gpu, dw,
                    between_backends(rows + 2, 2 * (rows + 2), rows + 1.0, DType::f32)));
}

// --- rmsnorm: bf16 x, weight, y, dy, dx; f32 rstd and dweight -----------------------------------

// x, dy in [-1, 1], w in [0.5, 1.5], width 1000, 150 rows (three of the GPU's 64-row dweight
// chunks). r = max rstd. The CPU's counts are its bf16 test's. The GPU sums the width squares in
// f32 (width), then a divide, an add, a square root and a reciprocal: width + 4 for rstd (the
// square root halves the sum's relative error: generous); y = (x r) w: 2 more. Backward gets the
// CPU's rstd on both backends. dx: a width-long dot of 3-operation terms, a divide, then
// r (dy w - x r mean): width + 8, magnitude r (1.5 + 1.5 r^2). dweight: each row adds dy (x r)
// (2 operations) into a chunk sum, the chunk sums add up, then dweight: rows + 3, magnitude
// rows r + 1.
TEST_F(CudaBf16Ops, RmsNormMatchesTheCpu) {
  const int64_t rows = 150, width = 1000;
  const Shape shape{rows, width};
  const Tensor x = random_tensor(shape, DType::bf16, 20);
  const Tensor w = random_tensor({width}, DType::bf16, 21, 0.5, 1.5);
  const Tensor dy = random_tensor(shape, DType::bf16, 22);
  Stream host;
  Tensor y = nan_host(shape, DType::bf16), rstd = nan_host({rows}, DType::f32);
  ops::rmsnorm_forward(x, w, 1e-5f, y, rstd, host);
  Tensor y_gpu = nan_gpu(shape, DType::bf16), rstd_gpu = nan_gpu({rows}, DType::f32);
  ops::rmsnorm_forward(on_gpu(x), on_gpu(w), 1e-5f, y_gpu, rstd_gpu, gpu);
  const double r = max_element(rstd);
  EXPECT_TRUE(
      close("rmsnorm_forward rstd", rstd_gpu, rstd, between_backends(1, width + 4, r, DType::f32)));
  EXPECT_TRUE(
      close("rmsnorm_forward y", y_gpu, y, between_backends(2, width + 6, 1.5 * r, DType::bf16)));

  for (DType dweight_dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(std::string(dtype_name(dweight_dtype)) + " dweight");
    Tensor dx = nan_host(shape, DType::bf16), dx_gpu = nan_gpu(shape, DType::bf16);
    Tensor dweight = random_tensor({width}, dweight_dtype, 23);
    Tensor dweight_gpu = on_gpu(dweight);
    ops::rmsnorm_backward(dy, x, w, rstd, dx, dweight, host);
    ops::rmsnorm_backward(on_gpu(dy), on_gpu(x), on_gpu(w), on_gpu(rstd), dx_gpu, dweight_gpu, gpu);
    EXPECT_TRUE(close("rmsnorm_backward dx", dx_gpu, dx,
                      between_backends(4, width + 8, r * (1.5 + 1.5 * r * r), DType::bf16)));
    EXPECT_TRUE(close("rmsnorm_backward dweight", dweight_gpu, dweight,
                      between_backends(rows + 3, rows + 3, rows * r + 1, dweight_dtype)));
  }
}

// --- rope ------------------------------------------------------------------------------------

// Both backends rotate in f64 and round f64 -> f32 -> bf16; their f64 sin and cos may differ in
// the last bits. Counted as the CPU test does (1 f32 rounding, magnitude |a| + |b| <= 2) plus
// one for the GPU's f64 functions.
TEST_F(CudaBf16Ops, RopeMatchesTheCpu) {
  const int64_t rows = 37, heads = 3, head_dim = 128;
  const Shape shape{rows, heads, head_dim};
  std::vector<int32_t> position_values;
  for (int64_t n = 0; n < rows; ++n) position_values.push_back(static_cast<int32_t>(n * 1117));
  const Tensor positions = Tensor::from_vector<int32_t>({rows}, position_values);
  const Tensor x = random_tensor(shape, DType::bf16, 24);
  const Tolerance tol = between_backends(1, 2, 2, DType::bf16);
  Stream host;
  Tensor out = nan_host(shape, DType::bf16), out_gpu = nan_gpu(shape, DType::bf16);
  const Tensor table = testing::rope_table(10000.0, head_dim);
  ops::rope_forward(x, positions, table, 1.0f, out, host);
  ops::rope_forward(on_gpu(x), on_gpu(positions), on_gpu(table), 1.0f, out_gpu, gpu);
  EXPECT_TRUE(close("rope_forward", out_gpu, out, tol));
  Tensor dx = nan_host(shape, DType::bf16), dx_gpu = on_gpu(x);  // in place on the GPU
  ops::rope_backward(x, positions, table, 1.0f, dx, host);
  ops::rope_backward(dx_gpu, on_gpu(positions), on_gpu(table), 1.0f, dx_gpu, gpu);
  EXPECT_TRUE(close("rope_backward in place", dx_gpu, dx, tol));
}

// --- swiglu, sigmoid gate, gate mix -------------------------------------------------------------

// gate in [-5, 5]: |g s u|, |d g s| <= 5 and |d u s (1 + g (1 - s))| with its terms
// s (1 + |g| (1 - s)) <= 5: magnitude 5 for all three. The CPU's counts (5, 9, 5) plus one for
// the GPU's expf.
TEST_F(CudaBf16Ops, SwigluMatchesTheCpu) {
  const Shape shape{37, 1000};
  const Tensor gate = random_tensor(shape, DType::bf16, 25, -5, 5);
  const Tensor up = random_tensor(shape, DType::bf16, 26);
  const Tensor dout = random_tensor(shape, DType::bf16, 27);
  Stream host;
  Tensor out = nan_host(shape, DType::bf16), out_gpu = nan_gpu(shape, DType::bf16);
  ops::swiglu_forward(gate, up, out, host);
  ops::swiglu_forward(on_gpu(gate), on_gpu(up), out_gpu, gpu);
  EXPECT_TRUE(close("swiglu_forward", out_gpu, out, between_backends(5, 6, 5, DType::bf16)));
  Tensor dgate = nan_host(shape, DType::bf16), dup = nan_host(shape, DType::bf16);
  Tensor dgate_gpu = nan_gpu(shape, DType::bf16), dup_gpu = nan_gpu(shape, DType::bf16);
  ops::swiglu_backward(dout, gate, up, dgate, dup, host);
  ops::swiglu_backward(on_gpu(dout), on_gpu(gate), on_gpu(up), dgate_gpu, dup_gpu, gpu);
  EXPECT_TRUE(
      close("swiglu_backward dgate", dgate_gpu, dgate, between_backends(9, 10, 5, DType::bf16)));
  EXPECT_TRUE(close("swiglu_backward dup", dup_gpu, dup, between_backends(5, 6, 5, DType::bf16)));
}

// logits in [-6, 6]. The GPU's s: expf, an add, a divide (4); out = s x and dx = s dout: 5,
// magnitude 1. dlogits: a width-long f32 dot (width + 1), s and 1 - s as sigmoid(-l) (4 each) and
// two products: width + 11, magnitude width / 4. The CPU's counts are its bf16 test's (2, 1, 1).
TEST_F(CudaBf16Ops, SigmoidGateMatchesTheCpu) {
  const int64_t rows = 37, width = 1000;
  const Shape shape{rows, width};
  const Tensor x = random_tensor(shape, DType::bf16, 28);
  const Tensor logits = random_tensor({rows, 1}, DType::bf16, 29, -6, 6);
  const Tensor dout = random_tensor(shape, DType::bf16, 30);
  Stream host;
  Tensor out = nan_host(shape, DType::bf16), out_gpu = nan_gpu(shape, DType::bf16);
  ops::sigmoid_gate_forward(x, logits, out, host);
  ops::sigmoid_gate_forward(on_gpu(x), on_gpu(logits), out_gpu, gpu);
  EXPECT_TRUE(close("sigmoid_gate_forward", out_gpu, out, between_backends(2, 5, 1, DType::bf16)));
  Tensor dx = nan_host(shape, DType::bf16), dx_gpu = nan_gpu(shape, DType::bf16);
  Tensor dlogits = nan_host({rows, 1}, DType::bf16), dlogits_gpu = nan_gpu({rows, 1}, DType::bf16);
  ops::sigmoid_gate_backward(dout, x, logits, dx, dlogits, host);
  ops::sigmoid_gate_backward(on_gpu(dout), on_gpu(x), on_gpu(logits), dx_gpu, dlogits_gpu, gpu);
  EXPECT_TRUE(
      close("sigmoid_gate_backward dx", dx_gpu, dx, between_backends(1, 5, 1, DType::bf16)));
  EXPECT_TRUE(close("sigmoid_gate_backward dlogits", dlogits_gpu, dlogits,
                    between_backends(1, width + 11, width / 4.0, DType::bf16)));
}

// M = 3 inputs, logits in [-4, 4] (|x - max| <= 8), values and dout in [-1, 1]; one saturated
// gate. The GPU, in f32: a weight is exp(x - max) (8 + 2) over a sum of M of them, divided (1):
// M + 11; out adds M weighted values: 2M + 12, magnitude 1; dvalues = g d: M + 12, magnitude 1;
// dlogits = g (v - out) d: M + 14, magnitude 2. The CPU computes in double: 1 each.
TEST_F(CudaBf16Ops, GateMixMatchesTheCpu) {
  const int64_t models = 3, tokens = 37, width = 1000;
  const Shape shape{models, tokens, width}, out_shape{tokens, width};
  Tensor logits = random_tensor(shape, DType::bf16, 31, -4, 4);
  logits.data<bf16_t>()[0] = float_to_bf16(100.0f);
  const Tensor values = random_tensor(shape, DType::bf16, 32);
  const Tensor dout = random_tensor(out_shape, DType::bf16, 33);
  Stream host;
  Tensor out = nan_host(out_shape, DType::bf16), out_gpu = nan_gpu(out_shape, DType::bf16);
  ops::gate_mix_forward(logits, values, out, host);
  ops::gate_mix_forward(on_gpu(logits), on_gpu(values), out_gpu, gpu);
  EXPECT_TRUE(close("gate_mix_forward", out_gpu, out,
                    between_backends(1, 2 * models + 12, 1, DType::bf16)));
  // Backward reads forward's out: both get the CPU's.
  Tensor dlogits = nan_host(shape, DType::bf16), dvalues = nan_host(shape, DType::bf16);
  Tensor dlogits_gpu = nan_gpu(shape, DType::bf16), dvalues_gpu = nan_gpu(shape, DType::bf16);
  ops::gate_mix_backward(dout, logits, values, out, dlogits, dvalues, host);
  ops::gate_mix_backward(on_gpu(dout), on_gpu(logits), on_gpu(values), on_gpu(out), dlogits_gpu,
                         dvalues_gpu, gpu);
  EXPECT_TRUE(close("gate_mix_backward dlogits", dlogits_gpu, dlogits,
                    between_backends(1, models + 14, 2, DType::bf16)));
  EXPECT_TRUE(close("gate_mix_backward dvalues", dvalues_gpu, dvalues,
                    between_backends(1, models + 12, 1, DType::bf16)));
}

// --- cross-entropy: bf16 or f32 logits, f32 lse and target logits --------------------------------

// V = 5000 classes in [-4, 4] on a shard starting at 100, targets in and out of it and an ignored
// row: |lse| <= 4 + log V < 12.6. target_logits copy a logit: bit for bit. lse: the CPU narrows a
// double (1); the GPU sums V exps online in f32, rescaling as the max grows, and merges 256 partial
// sums (V + 64 generously), then log and add: relative sum errors are absolute lse errors, so
// magnitude 12.6 covers both. dlogits = 0.5 (exp(x - lse) - onehot) from the CPU's lse on both:
// |x - lse| <= 16.6 (17), expf (2), subtract and scale: 21 on the GPU; the CPU's test counts
// 1 + |lse| = 14. Magnitude 1.
TEST_F(CudaBf16Ops, CrossEntropyMatchesTheCpu) {
  const int64_t rows = 37, vocab = 5000, vocab_start = 100;
  std::vector<int32_t> target_values;
  for (int64_t n = 0; n < rows; ++n)
    target_values.push_back(n == 5 ? -100 : static_cast<int32_t>(n * 977 % 6000));
  const Tensor targets = Tensor::from_vector<int32_t>({rows}, target_values);
  for (DType logits_dtype : {DType::bf16, DType::f32}) {
    SCOPED_TRACE(std::string(dtype_name(logits_dtype)) + " logits");
    // The same bf16-exact values in both dtypes.
    const Tensor logits =
        testing::converted(random_tensor({rows, vocab}, DType::bf16, 34, -4, 4), logits_dtype);
    Stream host;
    Tensor target_logits = nan_host({rows}, DType::f32), lse = nan_host({rows}, DType::f32);
    Tensor target_logits_gpu = nan_gpu({rows}, DType::f32), lse_gpu = nan_gpu({rows}, DType::f32);
    ops::cross_entropy_forward(logits, targets, -100, vocab_start, target_logits, lse, host);
    ops::cross_entropy_forward(on_gpu(logits), on_gpu(targets), -100, vocab_start,
                               target_logits_gpu, lse_gpu, gpu);
    EXPECT_TRUE(same_bits("cross_entropy target_logits", target_logits_gpu, target_logits));
    EXPECT_TRUE(close("cross_entropy lse", lse_gpu, lse,
                      between_backends(1, vocab + 64, 12.6, DType::f32)));

    Tensor dlogits = nan_host(logits.shape(), logits_dtype);
    Tensor dlogits_gpu = nan_gpu(logits.shape(), logits_dtype);
    ops::cross_entropy_backward(logits, targets, lse, -100, vocab_start, 0.5f, dlogits, host);
    ops::cross_entropy_backward(on_gpu(logits), on_gpu(targets), on_gpu(lse), -100, vocab_start,
                                0.5f, dlogits_gpu, gpu);
    EXPECT_TRUE(close("cross_entropy dlogits", dlogits_gpu, dlogits,
                      between_backends(14, 21, 1, logits_dtype)));
  }
}

// --- attention: bf16 q, k, v, out, dout, dq, dk, dv; f32 lse ------------------------------------

// B = 2, T = 70 (not a multiple of the GPU's 32-row tiles), Hq = 4, Hkv = 2 (group 2), hd = 64,
// scale 1/8, inputs in [-1, 1]: |score| <= scale hd = 8, |lse| <= 8 + log T < 12.3.
// - Both backends compute in f32 from the widened inputs (the CPU through its tiled f32 path, in
//   another order) and round each output once, so each gets the same count.
// - In f32: a score is an hd-long dot and a scale (hd + 1 operations on magnitude 8, so 8 (hd + 1)
//   relative to a probability); exp(score - max) adds |score - max| <= 16 and exp's 2; a row sums
//   T of them. So p carries P = 8 (hd + 1) + T + 18. out = sum p v / sum p: P + T + 1, magnitude
//   1. lse = max + log(sum): hd + T + 6, magnitude 12.3. ds = p (dout . v - delta), both dots hd
//   long over terms <= 1: P + 2 hd + 3; dv sums group T terms p dout, dk group T terms ds q, dq T
//   terms ds k: P + 2 hd + 2 group T + 8 for all three.
// - Magnitudes as the CPU test's: |ds| <= 2 hd p, dv <= group T, dk <= scale 2 hd group T,
//   dq <= scale 2 hd T.
TEST_F(CudaBf16Ops, AttentionMatchesTheCpu) {
  const int64_t batch = 2, seq = 70, q_heads = 4, kv_heads = 2, hd = 64, group = 2;
  const float scale = 0.125f;
  const Tensor q = random_tensor({batch, seq, q_heads, hd}, DType::bf16, 35);
  const Tensor k = random_tensor({batch, seq, kv_heads, hd}, DType::bf16, 36);
  const Tensor v = random_tensor({batch, seq, kv_heads, hd}, DType::bf16, 37);
  const Tensor dout = random_tensor(q.shape(), DType::bf16, 38);
  const Shape lse_shape{batch, q_heads, seq};
  Stream host;
  Tensor out = nan_host(q.shape(), DType::bf16), lse = nan_host(lse_shape, DType::f32);
  Tensor out_gpu = nan_gpu(q.shape(), DType::bf16), lse_gpu = nan_gpu(lse_shape, DType::f32);
  ops::attention_forward(q, k, v, scale, out, lse, host);
  ops::attention_forward(on_gpu(q), on_gpu(k), on_gpu(v), scale, out_gpu, lse_gpu, gpu);
  const int64_t p_ops = 8 * (hd + 1) + seq + 18;
  EXPECT_TRUE(close("attention_forward out", out_gpu, out,
                    between_backends(p_ops + seq + 1, p_ops + seq + 1, 1, DType::bf16)));
  EXPECT_TRUE(close("attention_forward lse", lse_gpu, lse,
                    between_backends(hd + seq + 6, hd + seq + 6, 12.3, DType::f32)));

  // Backward from the CPU's out and lse on both backends.
  Tensor dq = nan_host(q.shape(), DType::bf16), dk = nan_host(k.shape(), DType::bf16);
  Tensor dv = nan_host(v.shape(), DType::bf16);
  Tensor dq_gpu = nan_gpu(q.shape(), DType::bf16), dk_gpu = nan_gpu(k.shape(), DType::bf16);
  Tensor dv_gpu = nan_gpu(v.shape(), DType::bf16);
  ops::attention_backward(dout, q, k, v, out, lse, scale, dq, dk, dv, host);
  ops::attention_backward(on_gpu(dout), on_gpu(q), on_gpu(k), on_gpu(v), on_gpu(out), on_gpu(lse),
                          scale, dq_gpu, dk_gpu, dv_gpu, gpu);
  const int64_t grad_ops = p_ops + 2 * hd + 2 * group * seq + 8;
  const double ds = 2.0 * hd;
  EXPECT_TRUE(close("attention_backward dq", dq_gpu, dq,
                    between_backends(grad_ops, grad_ops, scale * ds * seq, DType::bf16)));
  EXPECT_TRUE(close("attention_backward dk", dk_gpu, dk,
                    between_backends(grad_ops, grad_ops, scale * ds * group * seq, DType::bf16)));
  EXPECT_TRUE(
      close("attention_backward dv", dv_gpu, dv,
            between_backends(grad_ops, grad_ops, static_cast<double>(group * seq), DType::bf16)));
}

}  // namespace
}  // namespace moe
