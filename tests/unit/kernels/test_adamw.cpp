// AdamW through the public op API. Properties that follow from the update rule rather than from the
// kernel's code: the bias-corrected first step is lr * sign(g) whatever the betas; zero gradients
// with weight decay shrink p by (1 - lr*wd) per step; a small quadratic is minimized. Several
// steps are compared with a scalar double-precision loop written here; argument errors are checked.
// bf16: an InputError (master weights and moments stay f32 in bf16 training).
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/bf16_check.h"
#include "tests/support/error_message.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;

using ops::AdamWOptions;

struct AdamWState {
  Tensor param, m, v;
};

AdamWState make_state(const Tensor& param) {
  return {param.clone(), Tensor::zeros(param.shape(), param.dtype()),
          Tensor::zeros(param.shape(), param.dtype())};
}

void step(AdamWState& s, const Tensor& grad, const AdamWOptions& options, int64_t t) {
  Stream stream;
  ops::adamw_step(s.param, grad, s.m, s.v, options, t, stream);
}

// One parameter, written from the paper's algorithm: decay first, then the Adam step.
struct ScalarAdamW {
  double p, m = 0, v = 0;

  void step(double g, const AdamWOptions& o, int64_t t) {
    const double beta1 = o.beta1, beta2 = o.beta2, lr = o.lr, eps = o.eps, wd = o.weight_decay;
    m = beta1 * m + (1 - beta1) * g;
    v = beta2 * v + (1 - beta2) * g * g;
    const double m_hat = m / (1 - std::pow(beta1, static_cast<double>(t)));
    const double v_hat = v / (1 - std::pow(beta2, static_cast<double>(t)));
    p = p * (1 - lr * wd) - lr * m_hat / (std::sqrt(v_hat) + eps);
  }
};

// With m = v = 0, step 1 gives m_hat = g and v_hat = g^2, so the update is g / (|g| + eps).
TEST(AdamW, FirstStepMovesEachParameterByLrTimesSignOfGrad) {
  const std::vector<double> grads = {1e-3, -1e-3, 0.5, -0.5, 7.0, -7.0, 1e3, -1e3};
  const int64_t n = static_cast<int64_t>(grads.size());
  const Tensor p0 = testing::random_tensor({n}, DType::f64, 3);
  const Tensor grad = Tensor::from_vector<double>({n}, grads);
  for (auto [beta1, beta2] : {std::pair{0.9f, 0.95f}, {0.5f, 0.7f}, {0.0f, 0.999f}}) {
    AdamWOptions options;
    options.lr = 0.01f;
    options.beta1 = beta1;
    options.beta2 = beta2;
    AdamWState s = make_state(p0);
    step(s, grad, options, 1);
    for (int64_t i = 0; i < n; ++i) {
      const double g = grads[i];
      const double moved = s.param.data<double>()[i] - p0.data<double>()[i];
      const double tol = options.lr * options.eps / std::abs(g) + 1e-15;
      EXPECT_NEAR(moved, -options.lr * (g > 0 ? 1.0 : -1.0), tol)
          << "g=" << g << " beta1=" << beta1 << " beta2=" << beta2;
    }
  }
}

TEST(AdamW, FirstStepInFloat32) {
  const Tensor grad = Tensor::from_vector<float>({4}, {0.25f, -3.0f, 40.0f, -0.01f});
  const Tensor p0 = Tensor::from_vector<float>({4}, {1.0f, -2.0f, 0.5f, 0.0f});
  AdamWOptions options;
  options.lr = 0.1f;
  AdamWState s = make_state(p0);
  step(s, grad, options, 1);
  const Tensor expected = Tensor::from_vector<float>({4}, {0.9f, -1.9f, 0.4f, 0.1f});
  EXPECT_TRUE(testing::all_close(s.param, expected, 1e-6, 1e-6));
}

TEST(AdamW, WeightDecayAloneShrinksByOneMinusLrTimesDecay) {
  const Tensor p0 = testing::random_tensor({5, 3}, DType::f64, 4, -2.0, 2.0);
  const Tensor zero_grad = Tensor::zeros(p0.shape(), DType::f64);
  AdamWOptions options;
  options.lr = 0.1f;
  options.weight_decay = 0.5f;
  const double factor = 1.0 - static_cast<double>(options.lr) * options.weight_decay;
  AdamWState s = make_state(p0);
  for (int64_t t = 1; t <= 3; ++t) {
    step(s, zero_grad, options, t);
    for (int64_t i = 0; i < p0.numel(); ++i)
      EXPECT_NEAR(s.param.data<double>()[i], p0.data<double>()[i] * std::pow(factor, t), 1e-15)
          << "step " << t << " index " << i;
  }
  const std::vector<double> zeros(static_cast<size_t>(p0.numel()), 0.0);
  EXPECT_EQ(s.m.to_vector<double>(), zeros);  // decay never enters the moments
  EXPECT_EQ(s.v.to_vector<double>(), zeros);
}

TEST(AdamW, MatchesScalarReferenceOverSeveralSteps) {
  AdamWOptions options;
  options.lr = 0.02f;
  options.beta1 = 0.8f;
  options.beta2 = 0.99f;
  options.eps = 1e-6f;
  options.weight_decay = 0.1f;
  const int64_t steps = 6;
  const Shape shape{7, 5};
  for (DType dtype : {DType::f64, DType::f32}) {
    const Tensor p0 = testing::random_tensor(shape, dtype, 40, -1.0, 1.0);
    AdamWState s = make_state(p0);
    std::vector<ScalarAdamW> reference;
    for (int64_t i = 0; i < p0.numel(); ++i)
      reference.push_back({testing::element_as_double(p0, i)});
    for (int64_t t = 1; t <= steps; ++t) {
      const Tensor grad = testing::random_tensor(shape, dtype, 100 + t, -2.0, 2.0);
      step(s, grad, options, t);
      for (int64_t i = 0; i < grad.numel(); ++i)
        reference[i].step(testing::element_as_double(grad, i), options, t);
    }
    std::vector<double> p, m, v;
    for (const ScalarAdamW& r : reference) {
      p.push_back(r.p);
      m.push_back(r.m);
      v.push_back(r.v);
    }
    const double tol = dtype == DType::f64 ? 1e-13 : 1e-6;
    EXPECT_TRUE(testing::all_close(s.param, Tensor::from_vector(shape, p), tol, tol))
        << dtype_name(dtype);
    EXPECT_TRUE(testing::all_close(s.m, Tensor::from_vector(shape, m), tol, tol))
        << dtype_name(dtype);
    EXPECT_TRUE(testing::all_close(s.v, Tensor::from_vector(shape, v), tol, tol))
        << dtype_name(dtype);
  }
}

// The f32 path (arithmetic in f32, vectorised) against f64 on the same f32-exact values, over an
// odd length, 3 steps of one gradient g in [-1, 1] (so m_hat = g, v_hat = g^2, |update| <= 1):
// m gains 3 operations a step (the f32 1 - b1, two products and a sum), v 4 (g g), so 9 and 12
// after 3 steps, relative to |g| <= 1 and g^2 <= 1; p rounds once a step at |p| <= 1, plus lr
// times the update's own error (about 25 operations, lr = 1e-3): within 4 operations at 1.
TEST(AdamW, F32MatchesF64) {
  const Tensor p0 = testing::random_tensor({1001}, DType::f32, 50);
  const Tensor g = testing::random_tensor({1001}, DType::f32, 51);
  AdamWOptions options;
  options.weight_decay = 0.1f;
  auto run = [&](DType dtype) {
    AdamWState s = make_state(testing::converted(p0, dtype));
    const Tensor grad = testing::converted(g, dtype);
    for (int64_t t = 1; t <= 3; ++t) step(s, grad, options, t);
    return std::vector<Tensor>{s.param, s.m, s.v};
  };
  EXPECT_TRUE(testing::f32_matches_f64(run, {{"param", 4, 1}, {"m", 9, 1}, {"v", 12, 1}}));
}

// f(p) = 1/2 sum_i a_i (p_i - c_i)^2 with curvatures a_i spread over two orders of magnitude.
TEST(AdamW, ConvergesToTheMinimumOfAQuadratic) {
  const int64_t n = 10;
  std::vector<double> a, c;
  for (int64_t i = 0; i < n; ++i) {
    a.push_back(0.1 + 1.1 * static_cast<double>(i));
    c.push_back(-2.0 + 0.5 * static_cast<double>(i));
  }
  AdamWOptions options;
  options.lr = 0.05f;
  options.beta2 = 0.999f;
  AdamWState s = make_state(Tensor::zeros({n}, DType::f64));
  Tensor grad = Tensor::zeros({n}, DType::f64);
  for (int64_t t = 1; t <= 1000; ++t) {
    for (int64_t i = 0; i < n; ++i)
      grad.data<double>()[i] = a[i] * (s.param.data<double>()[i] - c[i]);
    step(s, grad, options, t);
  }
  EXPECT_TRUE(testing::all_close(s.param, Tensor::from_vector<double>({n}, c), 1e-9, 0));
}

TEST(AdamW, RejectsStepZero) {
  AdamWState s = make_state(Tensor::zeros({3}, DType::f32));
  const Tensor grad = Tensor::zeros({3}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] { step(s, grad, AdamWOptions{}, 0); }),
                       "step counts from 1, got 0"));
}

TEST(AdamW, RejectsBetasOutOfRange) {
  AdamWState s = make_state(Tensor::zeros({3}, DType::f32));
  const Tensor grad = Tensor::zeros({3}, DType::f32);
  AdamWOptions beta1_one;
  beta1_one.beta1 = 1.0f;
  EXPECT_TRUE(mentions(input_error_message([&] { step(s, grad, beta1_one, 1); }),
                       "beta1 must be in [0, 1), got 1"));
  AdamWOptions beta2_negative;
  beta2_negative.beta2 = -0.5f;
  EXPECT_TRUE(mentions(input_error_message([&] { step(s, grad, beta2_negative, 1); }),
                       "beta2 must be in [0, 1), got -0.5"));
}

TEST(AdamW, RejectsShapeMismatch) {
  AdamWState s = make_state(Tensor::zeros({4, 2}, DType::f32));
  const Tensor flat_grad = Tensor::zeros({8}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] { step(s, flat_grad, AdamWOptions{}, 1); }),
                       "'grad' has shape [8], expected [4, 2]"));
  const Tensor grad = Tensor::zeros({4, 2}, DType::f32);
  s.v = Tensor::zeros({4, 3}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] { step(s, grad, AdamWOptions{}, 1); }),
                       "'v' has shape [4, 3], expected [4, 2]"));
}

TEST(AdamW, Bf16IsAnErrorThatNamesTheF32Recipe) {
  Stream stream;
  Tensor p = Tensor::zeros({4}, DType::bf16), g = Tensor::zeros({4}, DType::bf16);
  Tensor m = Tensor::zeros({4}, DType::bf16), v = Tensor::zeros({4}, DType::bf16);
  EXPECT_TRUE(testing::mentions(testing::input_error_message([&] {
                                  ops::adamw_step(p, g, m, v, ops::AdamWOptions{}, 1, stream);
                                }),
                                "bf16 training keeps this op in f32"));
}

}  // namespace
}  // namespace moe
