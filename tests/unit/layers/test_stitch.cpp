// Stitch layers: the seed-preserving initialization, the paper's layers at identity projections,
// fp64 gradients of both kinds with respect to every parameter and every input state, and
// parameter naming per expert.
#include <cmath>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "layers/stitch.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random_parameters.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::random_tensor;
using testing::zeros_like;

constexpr int64_t kTokens = 3, kWidth = 4;
const std::vector<std::string> kExperts{"code", "bible"};

std::vector<Tensor> expert_states(uint64_t seed) {
  return {random_tensor({kTokens, kWidth}, DType::f64, seed),
          random_tensor({kTokens, kWidth}, DType::f64, seed + 1)};
}

// Random gates, zero projections: every mixed-in value is the target's own state.
void randomize_gates(ParameterStore& store) {
  testing::randomize_parameters(store, 50, -3, 3, [](const Parameter& p) {
    return p.name.find(".gate.") != std::string::npos;
  });
}

TEST(Stitch, InitiallyExpertsIntoHubReturnsTheHubStateWhateverTheGates) {
  Stream stream;
  ParameterStore store(DType::f64);
  StitchLayer layer(store, 0, StitchKind::experts_into_hub, kExperts, kWidth);
  store.allocate(1);
  randomize_gates(store);
  const Tensor hub = random_tensor({kTokens, kWidth}, DType::f64, 2);
  StitchSaved saved;
  const Tensor out = layer.mix_into_hub(hub, expert_states(3), saved, stream);
  EXPECT_TRUE(testing::all_close(out, hub, 0, 1e-15));
}

TEST(Stitch, InitiallyHubIntoExpertsReturnsTheExpertStateWhateverTheGates) {
  Stream stream;
  ParameterStore store(DType::f64);
  StitchLayer layer(store, 1, StitchKind::hub_into_experts, kExperts, kWidth);
  store.allocate(1);
  randomize_gates(store);
  const Tensor hub = random_tensor({kTokens, kWidth}, DType::f64, 2);
  const std::vector<Tensor> experts = expert_states(3);
  StitchSaved saved;
  const Tensor out = layer.mix_into_expert(1, hub, experts[1], saved, stream);
  EXPECT_TRUE(testing::all_close(out, experts[1], 0, 1e-15));
}

// With P_e = I the layers are the paper's: a softmax mixture of h0 and the raw expert states, and
// the sigmoid blend of h_e and h0.
TEST(Stitch, IdentityProjectionsGiveThePapersMixtures) {
  Stream stream;
  ParameterStore store(DType::f64);
  StitchLayer into_hub(store, 0, StitchKind::experts_into_hub, kExperts, kWidth);
  StitchLayer into_experts(store, 1, StitchKind::hub_into_experts, kExperts, kWidth);
  store.allocate(1);
  for (Parameter& p : store.parameters())
    if (p.name.find(".proj.") != std::string::npos)
      for (int64_t i = 0; i < kWidth; ++i) p.value.data<double>()[i * kWidth + i] = 1.0;
  const double bias = 0.7;  // every gate logit, so the softmax is uniform and the sigmoid s(0.7)
  for (Parameter& p : store.parameters())
    if (p.name.ends_with(".gate.bias"))
      for (int64_t i = 0; i < kWidth; ++i) p.value.data<double>()[i] = bias;
  const Tensor hub = random_tensor({kTokens, kWidth}, DType::f64, 2);
  const std::vector<Tensor> experts = expert_states(3);
  StitchSaved s0, s1;
  const Tensor mixed = into_hub.mix_into_hub(hub, experts, s0, stream);
  const Tensor blended = into_experts.mix_into_expert(0, hub, experts[0], s1, stream);
  Tensor want_mixed = zeros_like(hub), want_blended = zeros_like(hub);
  const double s = 1 / (1 + std::exp(-bias));
  for (int64_t i = 0; i < hub.numel(); ++i) {
    const double h = hub.data<double>()[i], a = experts[0].data<double>()[i],
                 b = experts[1].data<double>()[i];
    want_mixed.data<double>()[i] = (h + a + b) / 3;
    want_blended.data<double>()[i] = (1 - s) * a + s * h;
  }
  EXPECT_TRUE(testing::all_close(mixed, want_mixed, 1e-15, 1e-13));
  EXPECT_TRUE(testing::all_close(blended, want_blended, 1e-15, 1e-13));
}

TEST(Stitch, ParametersAreNamedPerExpertAndOnlyMixingIntoTheHubHasAHubGate) {
  ParameterStore store(DType::f32);
  StitchLayer into_hub(store, 0, StitchKind::experts_into_hub, kExperts, kWidth);
  StitchLayer into_experts(store, 1, StitchKind::hub_into_experts, kExperts, kWidth);
  std::vector<std::string> names;
  for (const Parameter& p : store.parameters()) {
    names.push_back(p.name);
    EXPECT_FALSE(p.weight_decay) << p.name;
  }
  const std::vector<std::string> expected{
      "stitch.0.hub.gate.weight", "stitch.0.hub.gate.bias",     "stitch.0.code.gate.weight",
      "stitch.0.code.gate.bias",  "stitch.0.code.proj.weight",  "stitch.0.bible.gate.weight",
      "stitch.0.bible.gate.bias", "stitch.0.bible.proj.weight", "stitch.1.code.gate.weight",
      "stitch.1.code.gate.bias",  "stitch.1.code.proj.weight",  "stitch.1.bible.gate.weight",
      "stitch.1.bible.gate.bias", "stitch.1.bible.proj.weight"};
  EXPECT_EQ(names, expected);
}

TEST(Stitch, ExpertsIntoHubGradientsMatchFiniteDifferences) {
  Stream stream;
  ParameterStore store(DType::f64);
  StitchLayer layer(store, 0, StitchKind::experts_into_hub, kExperts, kWidth);
  store.allocate(1);
  // Random values everywhere, so that no gate is saturated and every term is exercised.
  std::vector<testing::GradInput> inputs = testing::randomize_parameters(store, 100, -1, 1);
  Tensor hub = random_tensor({kTokens, kWidth}, DType::f64, 2);
  std::vector<Tensor> experts = expert_states(3);
  const Tensor projection = random_tensor({kTokens, kWidth}, DType::f64, 9);
  StitchSaved saved;
  auto loss = [&] {
    StitchSaved s;
    return testing::dot(layer.mix_into_hub(hub, experts, s, stream), projection);
  };
  layer.mix_into_hub(hub, experts, saved, stream);
  Tensor dhub;
  std::vector<Tensor> dexperts;
  layer.mix_into_hub_backward(hub, saved, projection, dhub, dexperts, stream);
  inputs.push_back({"hub", hub, dhub});
  inputs.push_back({"code", experts[0], dexperts[0]});
  inputs.push_back({"bible", experts[1], dexperts[1]});
  EXPECT_TRUE(testing::gradients_match(loss, inputs));
}

TEST(Stitch, HubIntoExpertsGradientsMatchFiniteDifferences) {
  Stream stream;
  ParameterStore store(DType::f64);
  StitchLayer layer(store, 0, StitchKind::hub_into_experts, kExperts, kWidth);
  store.allocate(1);
  // Random values everywhere, so that no gate is saturated and every term is exercised.
  std::vector<testing::GradInput> inputs = testing::randomize_parameters(store, 100, -1, 1);
  Tensor hub = random_tensor({kTokens, kWidth}, DType::f64, 2);
  std::vector<Tensor> experts = expert_states(3);
  const Tensor p0 = random_tensor({kTokens, kWidth}, DType::f64, 9),
               p1 = random_tensor({kTokens, kWidth}, DType::f64, 10);
  auto loss = [&] {
    StitchSaved s0, s1;
    return testing::dot(layer.mix_into_expert(0, hub, experts[0], s0, stream), p0) +
           testing::dot(layer.mix_into_expert(1, hub, experts[1], s1, stream), p1);
  };
  StitchSaved s0, s1;
  layer.mix_into_expert(0, hub, experts[0], s0, stream);
  layer.mix_into_expert(1, hub, experts[1], s1, stream);
  Tensor dhub = zeros_like(hub), d0, d1;
  layer.mix_into_expert_backward(0, hub, s0, p0, dhub, d0, stream);
  layer.mix_into_expert_backward(1, hub, s1, p1, dhub, d1, stream);
  inputs.push_back({"hub", hub, dhub});
  inputs.push_back({"code", experts[0], d0});
  inputs.push_back({"bible", experts[1], d1});
  EXPECT_TRUE(testing::gradients_match(loss, inputs));
}

}  // namespace
}  // namespace moe
