// CUDA elementwise and row ops against the CPU backend: convert, add, axpy, scale, sum_of_squares,
// embedding, rmsnorm, rope, swiglu, sigmoid_gate and gate_mix, in f32 and bf16. The CPU reference
// runs in f32 on the inputs rounded to the dtype under test (cuda_compare.h); sizes are not
// multiples of the block size; assigned outputs start as garbage and accumulated ones as non-zero
// values. Tolerances are multiples of the output dtype's epsilon (cuda_compare.h): a bf16 output is
// rounded once from f32, so 1 eps holds it unless noted.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/cuda_compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/rope_table.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::matches_cpu;
using testing::random_tensor;
using testing::rounded;
using testing::to_device;
using testing::to_host;

constexpr DType kFloatDtypes[] = {DType::f32, DType::bf16};

double tolerance(DType dtype, double f32_multiple, double bf16_multiple) {
  return dtype == DType::f32 ? f32_multiple : bf16_multiple;
}

class CudaElementwiseOps : public testing::CudaTest {
 protected:
  // A device tensor full of 123: an assigned output that the kernel forgot to write cannot pass.
  Tensor garbage(const Shape& shape, DType dtype) {
    Tensor t = Tensor::empty(shape, dtype, Device::cuda(0));
    ops::fill(t, 123.0, gpu);
    return t;
  }
};

// Random values plus ones that test the rounding: bf16 ties (1 + 2^-8, 1 + 3 * 2^-8), f16's largest
// finite value, f16 subnormals and values that round to zero in f16.
TEST_F(CudaElementwiseOps, ConvertRoundsLikeTheCpu) {
  std::vector<float> values = random_tensor({1000}, DType::f32, 1, -300, 300).to_vector<float>();
  for (float v : {0.0f, -0.0f, 1.00390625f, 1.01171875f, 65504.0f, -6e-8f, 1e-7f, 3e-5f, 1e-30f})
    values.push_back(v);
  const Shape shape{static_cast<int64_t>(values.size())};
  const Tensor input = Tensor::from_vector<float>(shape, values);
  const Tensor on_device = to_device(input, DType::f32);
  for (DType narrow : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(narrow));
    Tensor narrowed = Tensor::empty(shape, narrow, Device::cuda(0));
    ops::convert(on_device, narrowed, gpu);
    EXPECT_TRUE(testing::all_close(to_host(narrowed), rounded(input, narrow), 0, 0));
    Tensor widened = garbage(shape, DType::f32);
    ops::convert(narrowed, widened, gpu);
    EXPECT_TRUE(testing::all_close(to_host(widened), rounded(input, narrow), 0, 0));
  }
  Tensor wide = Tensor::empty(shape, DType::f64, Device::cuda(0));
  ops::convert(on_device, wide, gpu);
  Tensor back = garbage(shape, DType::f32);
  ops::convert(wide, back, gpu);
  EXPECT_TRUE(testing::all_close(to_host(back), input, 0, 0));
}

TEST_F(CudaElementwiseOps, AddAxpyScaleMatchCpu) {
  const Shape shape{100003};
  const Tensor a = random_tensor(shape, DType::f32, 2), b = random_tensor(shape, DType::f32, 3);
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor ra = rounded(a, dtype), rb = rounded(b, dtype);

    Tensor sum = Tensor::zeros(shape, DType::f32);
    ops::add(ra, rb, sum, host);
    Tensor da = to_device(a, dtype), out = garbage(shape, dtype);
    const Tensor db = to_device(b, dtype);
    ops::add(da, db, out, gpu);
    EXPECT_TRUE(matches_cpu("add", out, sum, dtype, 1));
    ops::add(da, db, da, gpu);
    EXPECT_TRUE(matches_cpu("add in place", da, sum, dtype, 1));

    // alpha * x + y rounds twice on both backends (no fused multiply-add on the device).
    Tensor y = rb.clone();
    ops::axpy(-0.75f, ra, y, host);
    Tensor dy = to_device(b, dtype), dx = to_device(a, dtype);
    ops::axpy(-0.75f, dx, dy, gpu);
    EXPECT_TRUE(matches_cpu("axpy", dy, y, dtype, tolerance(dtype, 0, 1)));

    Tensor scaled = ra.clone();
    ops::scale(scaled, 1.3f, host);
    ops::scale(dx, 1.3f, gpu);
    EXPECT_TRUE(matches_cpu("scale", dx, scaled, dtype, 1));
  }
}

TEST_F(CudaElementwiseOps, SumOfSquaresMatchesCpuAndIsDeterministic) {
  for (int64_t n : {1, 1000, 1000003}) {
    const Tensor x = random_tensor({n}, DType::f32, 4);
    for (DType dtype : kFloatDtypes) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " n " + std::to_string(n));
      const double expected = ops::sum_of_squares(rounded(x, dtype), host);
      const Tensor on_device = to_device(x, dtype);
      const double got = ops::sum_of_squares(on_device, gpu);
      // Exact f64 squares summed in another order: at most n * 2^-53 apart, relatively.
      EXPECT_NEAR(got, expected, 1e-10 * expected);
      EXPECT_EQ(ops::sum_of_squares(on_device, gpu), got);  // bit for bit
    }
  }
  const Tensor empty = Tensor::empty({0}, DType::f32, Device::cuda(0));
  EXPECT_EQ(ops::sum_of_squares(empty, gpu), 0.0);
}

// The gradient norm's form: squares of several tensors added into one device scalar.
TEST_F(CudaElementwiseOps, SumOfSquaresIntoAccumulatesOnTheDevice) {
  const Tensor a = random_tensor({1000003}, DType::f32, 5), b = random_tensor({37}, DType::f32, 6);
  Tensor total = to_device(Tensor::from_vector<double>({1}, {0.25}), DType::f64);
  ops::sum_of_squares_into(to_device(a, DType::f32), total, gpu);
  ops::sum_of_squares_into(to_device(b, DType::f32), total, gpu);
  ops::sum_of_squares_into(Tensor::empty({0}, DType::f32, Device::cuda(0)), total, gpu);
  const double expected = 0.25 + ops::sum_of_squares(a, host) + ops::sum_of_squares(b, host);
  EXPECT_NEAR(ops::to_host(total, gpu).data<double>()[0], expected, 1e-10 * expected);
}

// A shard holding ids [20, 70) of 90; ids below and above it get zero rows.
TEST_F(CudaElementwiseOps, EmbeddingForwardGathersTheShardAndZeroesOtherIds) {
  const int64_t tokens = 37, rows = 50, width = 1000, vocab_start = 20;
  std::vector<int32_t> id_values;
  for (int64_t n = 0; n < tokens; ++n) id_values.push_back(static_cast<int32_t>(n * 7919 % 90));
  const Tensor ids = Tensor::from_vector<int32_t>({tokens}, id_values);
  const Tensor device_ids = to_device(ids, DType::i32);
  const Tensor table = random_tensor({rows, width}, DType::f32, 5);
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    Tensor expected = Tensor::zeros({tokens, width}, DType::f32);
    ops::embedding_forward(ids, rounded(table, dtype), vocab_start, expected, host);
    Tensor out = garbage({tokens, width}, dtype);
    ops::embedding_forward(device_ids, to_device(table, dtype), vocab_start, out, gpu);
    EXPECT_TRUE(matches_cpu("embedding_forward", out, expected, dtype, 0));  // a copy: exact
  }
}

// ids in [0, 60) on a shard holding [10, 50), a third of the tokens on one id (a long run), dtable
// non-zero. The device adds each id's tokens in token order in f32, as the CPU does, and rounds a
// bf16 dtable once; dtable may be f32 under bf16 activations.
TEST_F(CudaElementwiseOps, EmbeddingBackwardAccumulatesLikeCpu) {
  const int64_t tokens = 300, rows = 40, width = 1000, vocab_start = 10;
  std::vector<int32_t> id_values;
  for (int64_t n = 0; n < tokens; ++n)
    id_values.push_back(static_cast<int32_t>(n % 3 == 0 ? 25 : n * 37 % 60));
  const Tensor ids = Tensor::from_vector<int32_t>({tokens}, id_values);
  const Tensor device_ids = to_device(ids, DType::i32);
  const Tensor dout = random_tensor({tokens, width}, DType::f32, 6);
  const Tensor initial = random_tensor({rows, width}, DType::f32, 7);
  struct Case {
    DType activations, dtable;
  };
  for (const Case& c : {Case{DType::f32, DType::f32}, Case{DType::bf16, DType::bf16},
                        Case{DType::bf16, DType::f32}}) {
    SCOPED_TRACE(std::string(dtype_name(c.activations)) + " dout, " + dtype_name(c.dtable) +
                 " dtable");
    Tensor expected = rounded(initial, c.dtable);
    ops::embedding_backward(ids, rounded(dout, c.activations), vocab_start, expected, host);
    const Tensor device_dout = to_device(dout, c.activations);
    Tensor dtable = to_device(initial, c.dtable), again = to_device(initial, c.dtable);
    ops::embedding_backward(device_ids, device_dout, vocab_start, dtable, gpu);
    EXPECT_TRUE(matches_cpu("embedding_backward", dtable, expected, c.dtable, 1));
    ops::embedding_backward(device_ids, device_dout, vocab_start, again, gpu);
    EXPECT_TRUE(testing::all_close(to_host(again), to_host(dtable), 0, 0));  // deterministic
  }
}

// The CPU backend rejects negative ids; on the device they only give zero rows and no gradient.
TEST_F(CudaElementwiseOps, EmbeddingIgnoresNegativeIdsOnTheDevice) {
  const int64_t width = 40;
  const Tensor ids = to_device(Tensor::from_vector<int32_t>({4}, {-5, 3, -1, 3}), DType::i32);
  const Tensor table = random_tensor({6, width}, DType::f32, 8);
  Tensor out = garbage({4, width}, DType::f32);
  ops::embedding_forward(ids, to_device(table, DType::f32), 0, out, gpu);
  Tensor expected = Tensor::zeros({4, width}, DType::f32);
  for (int64_t n : {1, 3})
    for (int64_t d = 0; d < width; ++d)
      expected.data<float>()[n * width + d] = table.data<float>()[3 * width + d];
  EXPECT_TRUE(testing::all_close(to_host(out), expected, 0, 0));

  const Tensor dout = random_tensor({4, width}, DType::f32, 9);
  Tensor dtable = Tensor::empty({6, width}, DType::f32, Device::cuda(0));
  ops::fill(dtable, 0.0, gpu);
  ops::embedding_backward(ids, to_device(dout, DType::f32), 0, dtable, gpu);
  Tensor expected_dtable = Tensor::zeros({6, width}, DType::f32);
  for (int64_t d = 0; d < width; ++d)
    expected_dtable.data<float>()[3 * width + d] =
        dout.data<float>()[1 * width + d] + dout.data<float>()[3 * width + d];
  EXPECT_TRUE(testing::all_close(to_host(dtable), expected_dtable, 0, 0));
}

// f32 tolerances: the row's sum of squares is a sum of a few terms per thread and a tree of 256
// (about 12 roundings of positive terms), halved by the square root, plus the roundings of
// 1 / sqrt and of x * rstd * w. rstd is f32 for every activation dtype.
TEST_F(CudaElementwiseOps, RmsNormForwardMatchesCpu) {
  for (const Shape& shape : {Shape{37, 1000}, Shape{5, 3000}}) {
    const int64_t rows = shape[0], width = shape[1];
    const Tensor x = random_tensor(shape, DType::f32, 10);
    const Tensor w = random_tensor({width}, DType::f32, 11, 0.5, 1.5);
    for (DType dtype : kFloatDtypes) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + shape.str());
      Tensor y_expected = Tensor::zeros(shape, DType::f32);
      Tensor rstd_expected = Tensor::zeros({rows}, DType::f32);
      ops::rmsnorm_forward(rounded(x, dtype), rounded(w, dtype), 1e-5f, y_expected, rstd_expected,
                           host);
      Tensor y = garbage(shape, dtype), rstd = garbage({rows}, DType::f32);
      ops::rmsnorm_forward(to_device(x, dtype), to_device(w, dtype), 1e-5f, y, rstd, gpu);
      EXPECT_TRUE(matches_cpu("rmsnorm_forward y", y, y_expected, dtype, tolerance(dtype, 16, 1)));
      EXPECT_TRUE(matches_cpu("rmsnorm_forward rstd", rstd, rstd_expected, DType::f32, 16));
    }
  }
}

// 150 rows: three chunks of the dweight column sums, the last one partial. Both backends get the
// CPU's rstd, so only the backward differs. dx: a 1000-term f32 dot (vs the CPU's f64) enters
// through its mean; dweight: 150 f32 additions per column whose rounding errors add up like a
// random walk (about sqrt(150) * |partial sum| * 2^-24). bf16 outputs: one rounding, which those
// f32 differences may flip.
TEST_F(CudaElementwiseOps, RmsNormBackwardMatchesCpu) {
  const int64_t rows = 150, width = 1000;
  const Shape shape{rows, width};
  const Tensor x = random_tensor(shape, DType::f32, 12), dy = random_tensor(shape, DType::f32, 13);
  const Tensor w = random_tensor({width}, DType::f32, 14, 0.5, 1.5);
  const Tensor dweight_initial = random_tensor({width}, DType::f32, 15);
  struct Case {
    DType activations, dweight;
    bool frozen;  // an undefined dweight
  };
  for (const Case& c : {Case{DType::f32, DType::f32, false}, Case{DType::bf16, DType::bf16, false},
                        Case{DType::bf16, DType::f32, false}, Case{DType::f32, DType::f32, true}}) {
    SCOPED_TRACE(std::string(dtype_name(c.activations)) + " activations, " +
                 (c.frozen ? "no" : dtype_name(c.dweight)) + " dweight");
    const DType a = c.activations;
    const Tensor rx = rounded(x, a), rdy = rounded(dy, a), rw = rounded(w, a);
    Tensor y = Tensor::zeros(shape, DType::f32), rstd = Tensor::zeros({rows}, DType::f32);
    ops::rmsnorm_forward(rx, rw, 1e-5f, y, rstd, host);

    Tensor dx_expected = Tensor::zeros(shape, DType::f32);
    Tensor dweight_expected = c.frozen ? Tensor() : rounded(dweight_initial, c.dweight);
    ops::rmsnorm_backward(rdy, rx, rw, rstd, dx_expected, dweight_expected, host);

    Tensor dx = garbage(shape, a);
    Tensor dweight = c.frozen ? Tensor() : to_device(dweight_initial, c.dweight);
    ops::rmsnorm_backward(to_device(dy, a), to_device(x, a), to_device(w, a),
                          to_device(rstd, DType::f32), dx, dweight, gpu);
    EXPECT_TRUE(matches_cpu("rmsnorm_backward dx", dx, dx_expected, a, tolerance(a, 16, 2)));
    if (!c.frozen) {
      EXPECT_TRUE(matches_cpu("rmsnorm_backward dweight", dweight, dweight_expected, c.dweight,
                              tolerance(c.dweight, 32, 2)));
    }
  }
}

// Positions up to 36 * 1117 = 40212 (large angles), the theta-10000 table with every other entry
// divided by 8 (as rope scaling divides some) and a cos/sin scale of 1.1. Both backends compute in
// f64 and round once; their f64 results may differ in the last bits (sincos), which can flip that
// rounding.
TEST_F(CudaElementwiseOps, RopeForwardBackwardAndInPlaceMatchCpu) {
  const int64_t rows = 37, heads = 3, head_dim = 128;
  const Shape shape{rows, heads, head_dim};
  std::vector<int32_t> position_values;
  for (int64_t n = 0; n < rows; ++n) position_values.push_back(static_cast<int32_t>(n * 1117));
  const Tensor positions = Tensor::from_vector<int32_t>({rows}, position_values);
  const Tensor device_positions = to_device(positions, DType::i32);
  const Tensor x = random_tensor(shape, DType::f32, 16);
  std::vector<double> inv_freq = testing::rope_table(10000.0, head_dim).to_vector<double>();
  for (size_t i = 1; i < inv_freq.size(); i += 2) inv_freq[i] /= 8;
  const Tensor table = Tensor::from_vector<double>({head_dim / 2}, inv_freq);
  const Tensor device_table = to_device(table, DType::f64);
  const float scale = 1.1f;
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const double multiple = tolerance(dtype, 2, 1);
    const Tensor rx = rounded(x, dtype), device_x = to_device(x, dtype);

    Tensor forward = Tensor::zeros(shape, DType::f32);
    ops::rope_forward(rx, positions, table, scale, forward, host);
    Tensor out = garbage(shape, dtype);
    ops::rope_forward(device_x, device_positions, device_table, scale, out, gpu);
    EXPECT_TRUE(matches_cpu("rope_forward", out, forward, dtype, multiple));
    Tensor in_place = to_device(x, dtype);
    ops::rope_forward(in_place, device_positions, device_table, scale, in_place, gpu);
    EXPECT_TRUE(matches_cpu("rope_forward in place", in_place, forward, dtype, multiple));

    Tensor backward = Tensor::zeros(shape, DType::f32);
    ops::rope_backward(rx, positions, table, scale, backward, host);
    Tensor dx = garbage(shape, dtype);
    ops::rope_backward(device_x, device_positions, device_table, scale, dx, gpu);
    EXPECT_TRUE(matches_cpu("rope_backward", dx, backward, dtype, multiple));
  }
}

// f32: the device's expf is within 2 ulp of the CPU's exp; in backward, 1 - s near s = 1 turns a
// few ulp of s into up to |g| times as many eps of dgate (|g| <= 5).
TEST_F(CudaElementwiseOps, SwigluMatchesCpu) {
  const Shape shape{37, 1000};
  const Tensor gate = random_tensor(shape, DType::f32, 17, -5, 5);
  const Tensor up = random_tensor(shape, DType::f32, 18, -2, 2);
  const Tensor dout = random_tensor(shape, DType::f32, 19);
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor rgate = rounded(gate, dtype), rup = rounded(up, dtype);
    const Tensor device_gate = to_device(gate, dtype), device_up = to_device(up, dtype);

    Tensor out_expected = Tensor::zeros(shape, DType::f32);
    ops::swiglu_forward(rgate, rup, out_expected, host);
    Tensor out = garbage(shape, dtype);
    ops::swiglu_forward(device_gate, device_up, out, gpu);
    EXPECT_TRUE(matches_cpu("swiglu_forward", out, out_expected, dtype, tolerance(dtype, 8, 1)));

    Tensor dgate_expected = Tensor::zeros(shape, DType::f32);
    Tensor dup_expected = Tensor::zeros(shape, DType::f32);
    ops::swiglu_backward(rounded(dout, dtype), rgate, rup, dgate_expected, dup_expected, host);
    Tensor dgate = garbage(shape, dtype), dup = garbage(shape, dtype);
    ops::swiglu_backward(to_device(dout, dtype), device_gate, device_up, dgate, dup, gpu);
    EXPECT_TRUE(matches_cpu("swiglu_backward dgate", dgate, dgate_expected, dtype,
                            tolerance(dtype, 32, 1)));
    EXPECT_TRUE(
        matches_cpu("swiglu_backward dup", dup, dup_expected, dtype, tolerance(dtype, 8, 1)));
  }
}

// f32: the device's sigmoid (expf, within 2 ulp) against the CPU's f64 one; dlogits is a 1000-term
// f32 dot against the CPU's f64 one, scaled by s (1 - s) <= 1/4.
TEST_F(CudaElementwiseOps, SigmoidGateMatchesCpu) {
  const Shape shape{37, 1000};
  const Tensor x = random_tensor(shape, DType::f32, 20);
  const Tensor logits = random_tensor({37, 1}, DType::f32, 21, -6, 6);
  const Tensor dout = random_tensor(shape, DType::f32, 22);
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor rx = rounded(x, dtype), rlogits = rounded(logits, dtype);
    const Tensor device_x = to_device(x, dtype), device_logits = to_device(logits, dtype);

    Tensor out_expected = Tensor::zeros(shape, DType::f32);
    ops::sigmoid_gate_forward(rx, rlogits, out_expected, host);
    Tensor out = garbage(shape, dtype);
    ops::sigmoid_gate_forward(device_x, device_logits, out, gpu);
    EXPECT_TRUE(
        matches_cpu("sigmoid_gate_forward", out, out_expected, dtype, tolerance(dtype, 8, 1)));

    Tensor dx_expected = Tensor::zeros(shape, DType::f32);
    Tensor dlogits_expected = Tensor::zeros({37, 1}, DType::f32);
    ops::sigmoid_gate_backward(rounded(dout, dtype), rx, rlogits, dx_expected, dlogits_expected,
                               host);
    Tensor dx = garbage(shape, dtype), dlogits = garbage({37, 1}, dtype);
    ops::sigmoid_gate_backward(to_device(dout, dtype), device_x, device_logits, dx, dlogits, gpu);
    EXPECT_TRUE(
        matches_cpu("sigmoid_gate_backward dx", dx, dx_expected, dtype, tolerance(dtype, 8, 1)));
    EXPECT_TRUE(matches_cpu("sigmoid_gate_backward dlogits", dlogits, dlogits_expected, dtype,
                            tolerance(dtype, 32, 2)));
  }
}

// Three inputs; element 0 has a saturated gate (weights exactly 1, 0, 0 on both backends). f32:
// the softmax weights carry the expf differences (a few ulp) into every output. Backward gets the
// CPU's forward output on both backends.
TEST_F(CudaElementwiseOps, GateMixMatchesCpu) {
  const int64_t models = 3, tokens = 37, width = 1000;
  const Shape shape{models, tokens, width}, out_shape{tokens, width};
  Tensor logits = random_tensor(shape, DType::f32, 23, -4, 4);
  logits.data<float>()[0] = 100.0f;
  const Tensor values = random_tensor(shape, DType::f32, 24);
  const Tensor dout = random_tensor(out_shape, DType::f32, 25);
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor rlogits = rounded(logits, dtype), rvalues = rounded(values, dtype);
    const Tensor device_logits = to_device(logits, dtype), device_values = to_device(values, dtype);

    Tensor out_expected = Tensor::zeros(out_shape, DType::f32);
    ops::gate_mix_forward(rlogits, rvalues, out_expected, host);
    Tensor out = garbage(out_shape, dtype);
    ops::gate_mix_forward(device_logits, device_values, out, gpu);
    EXPECT_TRUE(matches_cpu("gate_mix_forward", out, out_expected, dtype, tolerance(dtype, 8, 1)));

    const Tensor rout = rounded(out_expected, dtype);
    Tensor dlogits_expected = Tensor::zeros(shape, DType::f32);
    Tensor dvalues_expected = Tensor::zeros(shape, DType::f32);
    ops::gate_mix_backward(rounded(dout, dtype), rlogits, rvalues, rout, dlogits_expected,
                           dvalues_expected, host);
    Tensor dlogits = garbage(shape, dtype), dvalues = garbage(shape, dtype);
    ops::gate_mix_backward(to_device(dout, dtype), device_logits, device_values,
                           to_device(rout, dtype), dlogits, dvalues, gpu);
    EXPECT_TRUE(matches_cpu("gate_mix_backward dlogits", dlogits, dlogits_expected, dtype,
                            tolerance(dtype, 8, 1)));
    EXPECT_TRUE(matches_cpu("gate_mix_backward dvalues", dvalues, dvalues_expected, dtype,
                            tolerance(dtype, 8, 1)));
  }
}

}  // namespace
}  // namespace moe
