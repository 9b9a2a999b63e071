// swiglu: values against the definition, fp64 gradients and argument errors.
#include <cmath>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::random_tensor;
using testing::zeros_like;

TEST(SwiGlu, MatchesDefinition) {
  Stream stream;
  Tensor gate = random_tensor({3, 5}, DType::f64, 1, -4, 4),
         up = random_tensor({3, 5}, DType::f64, 2);
  Tensor out = zeros_like(gate), expected = zeros_like(gate);
  ops::swiglu_forward(gate, up, out, stream);
  for (int64_t i = 0; i < gate.numel(); ++i) {
    const double g = gate.data<double>()[i];
    expected.data<double>()[i] = g / (1 + std::exp(-g)) * up.data<double>()[i];
  }
  EXPECT_TRUE(testing::all_close(out, expected, 1e-14, 1e-12));
}

TEST(SwiGlu, GradientMatchesFiniteDifferences) {
  Stream stream;
  Tensor gate = random_tensor({4, 6}, DType::f64, 3, -4, 4),
         up = random_tensor({4, 6}, DType::f64, 4);
  Tensor out = zeros_like(gate), projection = random_tensor(gate.shape(), DType::f64, 5);
  auto loss = [&] {
    ops::swiglu_forward(gate, up, out, stream);
    return testing::dot(out, projection);
  };
  Tensor dgate = zeros_like(gate), dup = zeros_like(up);
  ops::swiglu_backward(projection, gate, up, dgate, dup, stream);
  EXPECT_TRUE(testing::gradients_match(loss, {{"gate", gate, dgate}, {"up", up, dup}}));
}

TEST(SwiGlu, RejectsMismatchedShapesAndIntegerTensors) {
  Stream stream;
  Tensor gate = Tensor::zeros({2, 4}, DType::f32), up = Tensor::zeros({2, 3}, DType::f32);
  Tensor out = Tensor::zeros({2, 4}, DType::f32);
  EXPECT_THROW(ops::swiglu_forward(gate, up, out, stream), InputError);
  Tensor gi = Tensor::zeros({2, 4}, DType::i32), ui = Tensor::zeros({2, 4}, DType::i32);
  Tensor oi = Tensor::zeros({2, 4}, DType::i32);
  try {
    ops::swiglu_forward(gi, ui, oi, stream);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("dtype i32 is not supported"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace moe
