// Causal grouped-query attention through the public op API. The forward is checked against a naive
// reference written here (the full T x T softmax, plain loops), also for sequences spanning several
// kernel blocks; gradients against fp64 finite differences; errors name the argument at fault.
// bf16: rounding points and the f64 reference (tests/support/bf16_check.h).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/half.h"
#include "kernels/ops.h"
#include "tests/support/bf16_check.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::input_error_message;

using testing::all_close;
using testing::random_tensor;

struct Case {
  int64_t batch, seq, q_heads, kv_heads, head_dim;
};

struct Inputs {
  Tensor q, k, v;
};

struct Outputs {
  Tensor out, lse;
};

Inputs random_inputs(const Case& c, DType dtype, uint64_t seed) {
  return {random_tensor({c.batch, c.seq, c.q_heads, c.head_dim}, dtype, seed),
          random_tensor({c.batch, c.seq, c.kv_heads, c.head_dim}, dtype, seed + 1),
          random_tensor({c.batch, c.seq, c.kv_heads, c.head_dim}, dtype, seed + 2)};
}

Outputs attention(const Inputs& in, float scale) {
  Stream stream;
  Outputs o{Tensor::empty(in.q.shape(), in.q.dtype()),
            Tensor::empty({in.q.dim(0), in.q.dim(2), in.q.dim(1)}, in.q.dtype())};
  ops::attention_forward(in.q, in.k, in.v, scale, o.out, o.lse, stream);
  return o;
}

struct Grads {
  Tensor dq, dk, dv;
};

Grads attention_grads(const Inputs& in, const Outputs& o, const Tensor& dout, float scale) {
  Stream stream;
  Grads g{Tensor::empty(in.q.shape(), in.q.dtype()), Tensor::empty(in.k.shape(), in.k.dtype()),
          Tensor::empty(in.v.shape(), in.v.dtype())};
  ops::attention_backward(dout, in.q, in.k, in.v, o.out, o.lse, scale, g.dq, g.dk, g.dv, stream);
  return g;
}

// Element [b, t, h, d] of a [B, T, H, hd] tensor, as double.
double at(const Tensor& x, int64_t b, int64_t t, int64_t h, int64_t d) {
  return testing::element_as_double(x, ((b * x.dim(1) + t) * x.dim(2) + h) * x.dim(3) + d);
}

// The textbook computation: per (batch, head), the full causal T x T score matrix, a max-shifted
// softmax per row, then probabilities times values. f64 outputs whatever the input dtype.
Outputs reference_attention(const Inputs& in, double scale) {
  const int64_t batch = in.q.dim(0), seq = in.q.dim(1), q_heads = in.q.dim(2), hd = in.q.dim(3);
  const int64_t group = q_heads / in.k.dim(2);
  Outputs o{Tensor::zeros(in.q.shape(), DType::f64),
            Tensor::zeros({batch, q_heads, seq}, DType::f64)};
  double* out = o.out.data<double>();
  double* lse = o.lse.data<double>();
  std::vector<double> scores(static_cast<size_t>(seq * seq));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < q_heads; ++h) {
      for (int64_t t = 0; t < seq; ++t)
        for (int64_t s = 0; s <= t; ++s) {
          double score = 0;
          for (int64_t d = 0; d < hd; ++d)
            score += at(in.q, b, t, h, d) * at(in.k, b, s, h / group, d);
          scores[t * seq + s] = scale * score;
        }
      for (int64_t t = 0; t < seq; ++t) {
        const double* row = &scores[t * seq];
        const double max = *std::max_element(row, row + t + 1);
        double sum = 0;
        for (int64_t s = 0; s <= t; ++s) sum += std::exp(row[s] - max);
        lse[(b * q_heads + h) * seq + t] = max + std::log(sum);
        for (int64_t s = 0; s <= t; ++s)
          for (int64_t d = 0; d < hd; ++d)
            out[((b * seq + t) * q_heads + h) * hd + d] +=
                std::exp(row[s] - max) / sum * at(in.v, b, s, h / group, d);
      }
    }
  return o;
}

void expect_matches_reference(const Case& c, DType dtype, float scale, double tolerance) {
  const Inputs in = random_inputs(c, dtype, 100);
  const Outputs got = attention(in, scale);
  const Outputs expected = reference_attention(in, scale);
  EXPECT_TRUE(all_close(got.out, expected.out, tolerance, tolerance));
  EXPECT_TRUE(all_close(got.lse, expected.lse, tolerance, tolerance));
}

// loss = <out, R>; the analytic gradients come from backward with dout = R.
void expect_gradients_match(const Case& c) {
  const float scale = 0.7f;
  const Inputs in = random_inputs(c, DType::f64, 200);
  const Tensor projection = random_tensor(in.q.shape(), DType::f64, 300);
  const Grads g = attention_grads(in, attention(in, scale), projection, scale);
  const auto loss = [&] { return testing::dot(attention(in, scale).out, projection); };
  EXPECT_TRUE(
      testing::gradients_match(loss, {{"q", in.q, g.dq}, {"k", in.k, g.dk}, {"v", in.v, g.dv}}));
}

TEST(Attention, ForwardMatchesNaiveReference) {
  for (const Case& c : {Case{2, 7, 4, 2, 8}, Case{1, 6, 3, 3, 4}, Case{2, 5, 4, 1, 4}}) {
    SCOPED_TRACE(::testing::Message() << "Hq=" << c.q_heads << " Hkv=" << c.kv_heads);
    expect_matches_reference(c, DType::f64, 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                             1e-12);
  }
}

TEST(Attention, BlockedForwardMatchesReferenceBeyondOneBlock) {
  // The kernel walks keys and queries in blocks of 32: lengths below, at, just past and well past
  // the block size, multiples of it and not.
  for (int64_t seq : {31, 32, 33, 64, 70, 97}) {
    SCOPED_TRACE(::testing::Message() << "T=" << seq);
    expect_matches_reference({2, seq, 4, 2, 8}, DType::f64, 0.35f, 1e-12);
  }
}

TEST(Attention, OnlineSoftmaxSurvivesLargeScores) {
  // Scores up to ~100 in magnitude: exp without the running max would overflow or lose every row.
  expect_matches_reference({1, 70, 2, 1, 16}, DType::f64, 25.0f, 1e-10);
}

TEST(Attention, Float32MatchesReference) {
  expect_matches_reference({2, 40, 4, 2, 16}, DType::f32, 0.25f, 1e-5);
}

TEST(Attention, SingleTokenReturnsItsValue) {
  const Inputs in = random_inputs({2, 1, 4, 2, 4}, DType::f64, 400);
  const Outputs o = attention(in, 0.5f);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t d = 0; d < 4; ++d) EXPECT_EQ(at(o.out, b, 0, h, d), at(in.v, b, 0, h / 2, d));
}

TEST(Attention, FutureKeysDoNotChangeEarlierRows) {
  const Case c{1, 40, 2, 1, 4};
  const Inputs in = random_inputs(c, DType::f64, 500);
  const Outputs before = attention(in, 0.5f);
  Inputs changed{in.q, in.k.clone(), in.v.clone()};
  const int64_t last_row = (c.seq - 1) * c.kv_heads * c.head_dim;
  for (int64_t i = last_row; i < changed.k.numel(); ++i) {
    changed.k.data<double>()[i] += 3.0;
    changed.v.data<double>()[i] -= 2.0;
  }
  const Outputs after = attention(changed, 0.5f);
  const auto rows = [&](const Outputs& o, int64_t start, int64_t count) {
    return o.out.view({c.seq, c.q_heads * c.head_dim}).narrow(start, count).to_vector<double>();
  };
  EXPECT_EQ(rows(after, 0, c.seq - 1), rows(before, 0, c.seq - 1));
  EXPECT_NE(rows(after, c.seq - 1, 1), rows(before, c.seq - 1, 1));
}

TEST(Attention, GradientMatchesFiniteDifferences) { expect_gradients_match({2, 5, 4, 2, 4}); }

TEST(Attention, GradientMatchesFiniteDifferencesMultiHead) {
  expect_gradients_match({2, 6, 3, 3, 4});
}

TEST(Attention, GradientMatchesFiniteDifferencesSingleToken) {
  expect_gradients_match({2, 1, 4, 2, 4});
}

TEST(Attention, GradientMatchesFiniteDifferencesAcrossBlocks) {
  expect_gradients_match({1, 37, 2, 1, 2});
}

TEST(Attention, BackwardAssignsGradients) {
  const float scale = 0.5f;
  const Inputs in = random_inputs({2, 9, 4, 2, 4}, DType::f64, 600);
  const Outputs o = attention(in, scale);
  const Tensor dout = random_tensor(in.q.shape(), DType::f64, 700);
  const Grads first = attention_grads(in, o, dout, scale);
  Grads second{first.dq.clone(), first.dk.clone(), first.dv.clone()};
  Stream stream;
  ops::attention_backward(dout, in.q, in.k, in.v, o.out, o.lse, scale, second.dq, second.dk,
                          second.dv, stream);
  EXPECT_EQ(second.dq.to_vector<double>(), first.dq.to_vector<double>());
  EXPECT_EQ(second.dk.to_vector<double>(), first.dk.to_vector<double>());
  EXPECT_EQ(second.dv.to_vector<double>(), first.dv.to_vector<double>());
}

TEST(Attention, Float32BackwardMatchesFloat64) {
  const Case c{2, 40, 4, 2, 8};
  const float scale = 0.35f;
  const Inputs in32 = random_inputs(c, DType::f32, 800);
  const Inputs in64 = random_inputs(c, DType::f64, 800);
  const Grads g32 = attention_grads(in32, attention(in32, scale),
                                    random_tensor(in32.q.shape(), DType::f32, 900), scale);
  const Grads g64 = attention_grads(in64, attention(in64, scale),
                                    random_tensor(in64.q.shape(), DType::f64, 900), scale);
  EXPECT_TRUE(all_close(g32.dq, g64.dq, 1e-5, 1e-4));
  EXPECT_TRUE(all_close(g32.dk, g64.dk, 1e-5, 1e-4));
  EXPECT_TRUE(all_close(g32.dv, g64.dv, 1e-5, 1e-4));
}

TEST(Attention, RejectsQueryHeadsNotAMultipleOfKvHeads) {
  const Inputs in = random_inputs({1, 4, 3, 2, 4}, DType::f32, 1000);
  const std::string message = input_error_message([&] { attention(in, 1.0f); });
  EXPECT_NE(message.find("attention_forward"), std::string::npos) << message;
  EXPECT_NE(message.find("query heads (3)"), std::string::npos) << message;
  EXPECT_NE(message.find("key/value heads (2)"), std::string::npos) << message;
}

TEST(Attention, RejectsMismatchedShapes) {
  const Case c{1, 4, 2, 1, 4};
  const Inputs good = random_inputs(c, DType::f32, 1100);
  const Tensor wrong_head_dim = random_tensor({1, 4, 1, 6}, DType::f32, 1200);
  const Tensor wrong_seq = random_tensor({1, 3, 1, 4}, DType::f32, 1300);
  const auto expect_names = [](const std::function<void()>& call, const std::string& arg) {
    const std::string message = input_error_message(call);
    EXPECT_NE(message.find("'" + arg + "'"), std::string::npos) << message;
  };
  expect_names([&] { attention({good.q, wrong_head_dim, good.v}, 1.0f); }, "k");
  expect_names([&] { attention({good.q, good.k, wrong_seq}, 1.0f); }, "v");
  expect_names([&] { attention({good.q.view({4, 2, 4}), good.k, good.v}, 1.0f); }, "q");

  Stream stream;
  Tensor out = Tensor::empty(good.q.shape(), DType::f32);
  Tensor bad_lse = Tensor::empty({1, 4, 2}, DType::f32);
  expect_names([&] { ops::attention_forward(good.q, good.k, good.v, 1.0f, out, bad_lse, stream); },
               "lse");
}

TEST(Attention, BackwardRejectsMismatchedGradientShapes) {
  const Inputs in = random_inputs({1, 4, 2, 1, 4}, DType::f32, 1400);
  const Outputs o = attention(in, 1.0f);
  Stream stream;
  Tensor dq = Tensor::empty(in.q.shape(), DType::f32);
  Tensor dk = Tensor::empty(in.q.shape(), DType::f32);  // kv shape expected
  Tensor dv = Tensor::empty(in.v.shape(), DType::f32);
  std::string message = input_error_message([&] {
    ops::attention_backward(o.out, in.q, in.k, in.v, o.out, o.lse, 1.0f, dq, dk, dv, stream);
  });
  EXPECT_NE(message.find("'dk'"), std::string::npos) << message;

  const Tensor short_dout = random_tensor({1, 3, 2, 4}, DType::f32, 1500);
  Tensor good_dk = Tensor::empty(in.k.shape(), DType::f32);
  message = input_error_message([&] {
    ops::attention_backward(short_dout, in.q, in.k, in.v, o.out, o.lse, 1.0f, dq, good_dk, dv,
                            stream);
  });
  EXPECT_NE(message.find("'dout'"), std::string::npos) << message;
}

// bf16 activations keep their lse in f32 (as the CUDA kernel): a bf16 lse is refused, naming it,
// forward and backward.
TEST(Attention, Bf16RefusesABf16Lse) {
  const Inputs in = random_inputs({1, 4, 2, 1, 4}, DType::bf16, 1650);
  Stream stream;
  Tensor out = Tensor::empty(in.q.shape(), DType::bf16);
  Tensor lse = Tensor::empty({1, 2, 4}, DType::bf16);
  std::string message = input_error_message(
      [&] { ops::attention_forward(in.q, in.k, in.v, 1.0f, out, lse, stream); });
  EXPECT_NE(message.find("lse"), std::string::npos) << message;
  Tensor dq = Tensor::empty(in.q.shape(), DType::bf16),
         dk = Tensor::empty(in.k.shape(), DType::bf16);
  Tensor dv = Tensor::empty(in.v.shape(), DType::bf16);
  message = input_error_message([&] {
    ops::attention_backward(in.q, in.q, in.k, in.v, in.q, lse, 1.0f, dq, dk, dv, stream);
  });
  EXPECT_NE(message.find("lse"), std::string::npos) << message;
}

TEST(Attention, RejectsMixedFloatDtypes) {
  const Inputs f32 = random_inputs({1, 4, 2, 1, 4}, DType::f32, 1600);
  const Inputs f64 = random_inputs({1, 4, 2, 1, 4}, DType::f64, 1600);
  const std::string message = input_error_message([&] { attention({f32.q, f64.k, f32.v}, 1.0f); });
  EXPECT_NE(message.find("dtypes"), std::string::npos) << message;
}

// B = 1, T = 40, Hq = 4, Hkv = 2, hd = 16, scale 1/4, inputs in [-1, 1]. bf16 runs the f32 path on
// the widened values and rounds out, dq, dk and dv once, so every output is the f32 run's rounded
// (lse, kept in f32, is the f32 run's exactly). Against f64, each output carries the f32 path's
// error (its test below: hd + group T operations, times the score size scale hd = 4, through exp)
// on top of the bf16 rounding. Magnitudes: |out| <= 1, |lse| <= 4 + log 40 < 8; with
// |ds| <= p 2 hd: dv <= group T = 80, dk <= scale 2 hd group T = 640, dq <= scale 2 hd T = 320.
// Backward reads one saved out and lse (from the bf16 forward) in every run.
TEST(Attention, Bf16RoundsTheF32PathAndMatchesF64) {
  const Tensor q = random_tensor({1, 40, 4, 16}, DType::bf16, 80);
  const Tensor k = random_tensor({1, 40, 2, 16}, DType::bf16, 81);
  const Tensor v = random_tensor({1, 40, 2, 16}, DType::bf16, 82);
  const Tensor dout = random_tensor({1, 40, 4, 16}, DType::bf16, 83);
  Tensor saved_out = Tensor::empty(q.shape(), DType::bf16);
  Tensor saved_lse = Tensor::empty({1, 4, 40}, DType::f32);
  Stream host;
  ops::attention_forward(q, k, v, 0.25f, saved_out, saved_lse, host);
  auto run = [&](DType dtype) {
    Stream stream;
    const Tensor qd = testing::converted(q, dtype), kd = testing::converted(k, dtype);
    const Tensor vd = testing::converted(v, dtype);
    Tensor out = Tensor::empty(q.shape(), dtype);
    Tensor lse = Tensor::empty({1, 4, 40}, testing::statistics_dtype(dtype));
    ops::attention_forward(qd, kd, vd, 0.25f, out, lse, stream);
    Tensor dq = Tensor::empty(q.shape(), dtype), dk = Tensor::empty(k.shape(), dtype);
    Tensor dv = Tensor::empty(v.shape(), dtype);
    ops::attention_backward(
        testing::converted(dout, dtype), qd, kd, vd, testing::converted(saved_out, dtype),
        testing::converted(saved_lse, testing::statistics_dtype(dtype)), 0.25f, dq, dk, dv, stream);
    return std::vector<Tensor>{out, lse, dq, dk, dv};
  };
  const int64_t ops = 16 + 2 * 40;
  const double score = 4;
  EXPECT_TRUE(testing::bf16_rounds_f32_and_matches_f64(run, {{"out", ops, score * 1},
                                                             {"lse", ops, score * 8},
                                                             {"dq", ops, score * 320},
                                                             {"dk", ops, score * 640},
                                                             {"dv", ops, score * 80}}));
}

// --- the f32 path (tiled GEMMs) against the f64 loops ---------------------------------------

double largest_magnitude(const Tensor& t) {
  double largest = 0;
  for (int64_t i = 0; i < t.numel(); ++i)
    largest = std::max(largest, std::abs(testing::element_as_double(t, i)));
  return largest;
}

// got within `relative` of expected, measured against the larger of expected's largest magnitude
// and 1 (the inputs' size): f32 GEMM results are accurate relative to the size of their terms, not
// elementwise (a sum of cancelling terms, such as dq of a one-token sequence, is 0 in f64).
::testing::AssertionResult close_to(const Tensor& got, const Tensor& expected, double relative) {
  return all_close(got, expected, relative * std::max(1.0, largest_magnitude(expected)), 0.0);
}

// One f32 run and one f64 run on the same (f32-exact) values, each backward from its own forward.
// Tolerance: the rounding model's worst case n u (u = 2^-24) for the longest chain of f32
// operations, n = hd (a score's dot product) + group * seq (a key's sum over the query rows),
// times the size of the scores (their errors pass through exp as relative errors of p).
void expect_f32_matches_f64(const Case& c, float scale) {
  const double score_size = std::max(1.0, static_cast<double>(scale) * c.head_dim);
  const double tolerance = std::ldexp(1.0, -24) *
                           static_cast<double>(c.head_dim + c.q_heads / c.kv_heads * c.seq) *
                           score_size;
  const Inputs in32 = random_inputs(c, DType::f32, 1700);
  const Inputs in64{testing::converted(in32.q, DType::f64), testing::converted(in32.k, DType::f64),
                    testing::converted(in32.v, DType::f64)};
  const Tensor dout32 = random_tensor(in32.q.shape(), DType::f32, 1800);
  const Outputs o32 = attention(in32, scale), o64 = attention(in64, scale);
  EXPECT_TRUE(close_to(o32.out, o64.out, tolerance)) << "out";
  EXPECT_TRUE(close_to(o32.lse, o64.lse, tolerance)) << "lse";
  const Grads g32 = attention_grads(in32, o32, dout32, scale);
  const Grads g64 = attention_grads(in64, o64, testing::converted(dout32, DType::f64), scale);
  EXPECT_TRUE(close_to(g32.dq, g64.dq, tolerance)) << "dq";
  EXPECT_TRUE(close_to(g32.dk, g64.dk, tolerance)) << "dk";
  EXPECT_TRUE(close_to(g32.dv, g64.dv, tolerance)) << "dv";
}

TEST(Attention, Float32TiledMatchesFloat64) {
  // The f32 path's tiles are 64 queries by 64 keys: one token, shorter than a tile, at, just past
  // and well past it, odd lengths; query heads per kv head 1, 2 and 4; head dims 16 to 128.
  for (const Case& c : {Case{2, 1, 4, 1, 16}, Case{1, 2, 2, 2, 32}, Case{2, 63, 4, 2, 32},
                        Case{1, 64, 2, 1, 64}, Case{2, 65, 4, 4, 16}, Case{1, 129, 2, 2, 32},
                        Case{1, 130, 8, 2, 128}, Case{2, 197, 4, 1, 64}}) {
    SCOPED_TRACE(::testing::Message() << "B=" << c.batch << " T=" << c.seq << " Hq=" << c.q_heads
                                      << " Hkv=" << c.kv_heads << " hd=" << c.head_dim);
    expect_f32_matches_f64(c, 1.0f / std::sqrt(static_cast<float>(c.head_dim)));
  }
}

TEST(Attention, Float32OnlineSoftmaxSurvivesLargeScores) {
  // Scores of a few hundred: exp without the running max would overflow f32 (above 88).
  expect_f32_matches_f64({1, 150, 2, 1, 16}, 25.0f);
}

TEST(Attention, Float32IsDeterministic) {
  const Case c{2, 300, 4, 2, 32};
  const Inputs in = random_inputs(c, DType::f32, 1900);
  const Tensor dout = random_tensor(in.q.shape(), DType::f32, 2000);
  const auto run = [&] {
    const Outputs o = attention(in, 0.2f);
    const Grads g = attention_grads(in, o, dout, 0.2f);
    return std::vector<std::vector<float>>{o.out.to_vector<float>(), o.lse.to_vector<float>(),
                                           g.dq.to_vector<float>(), g.dk.to_vector<float>(),
                                           g.dv.to_vector<float>()};
  };
  EXPECT_EQ(run(), run());
}

}  // namespace
}  // namespace moe
