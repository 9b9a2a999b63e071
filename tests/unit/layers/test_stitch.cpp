// Stitch layers: the seed-preserving initialization, fp64 gradients of both kinds with respect to
// every parameter and every input state, and parameter naming per expert.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "layers/stitch.h"
#include "tests/support/gradcheck.h"
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

TEST(Stitch, InitialExpertsIntoHubGivesEachExpertTheChosenWeight) {
  Stream stream;
  ParameterStore store(DType::f64);
  const double w = 0.01;
  StitchLayer layer(store, 0, StitchKind::experts_into_hub, kExperts, kWidth, w);
  store.allocate(1);
  const Tensor hub = random_tensor({kTokens, kWidth}, DType::f64, 2);
  const std::vector<Tensor> experts = expert_states(3);
  StitchSaved saved;
  const Tensor out = layer.mix_into_hub(hub, experts, saved, stream);
  Tensor expected = zeros_like(hub);
  for (int64_t i = 0; i < hub.numel(); ++i)
    expected.data<double>()[i] = (1 - 2 * w) * hub.data<double>()[i] +
                                 w * (experts[0].data<double>()[i] + experts[1].data<double>()[i]);
  EXPECT_TRUE(testing::all_close(out, expected, 1e-15, 1e-13));
}

TEST(Stitch, InitialHubIntoExpertsGivesTheHubTheChosenWeight) {
  Stream stream;
  ParameterStore store(DType::f64);
  const double w = 0.02;
  StitchLayer layer(store, 1, StitchKind::hub_into_experts, kExperts, kWidth, w);
  store.allocate(1);
  const Tensor hub = random_tensor({kTokens, kWidth}, DType::f64, 2);
  const std::vector<Tensor> experts = expert_states(3);
  StitchSaved saved;
  const Tensor out = layer.mix_into_expert(1, hub, experts[1], saved, stream);
  Tensor expected = zeros_like(hub);
  for (int64_t i = 0; i < hub.numel(); ++i)
    expected.data<double>()[i] = (1 - w) * experts[1].data<double>()[i] + w * hub.data<double>()[i];
  EXPECT_TRUE(testing::all_close(out, expected, 1e-15, 1e-13));
}

TEST(Stitch, ParametersAreNamedPerExpertAndOnlyMixingIntoTheHubHasAHubGate) {
  ParameterStore store(DType::f32);
  StitchLayer into_hub(store, 0, StitchKind::experts_into_hub, kExperts, kWidth, 1e-6);
  StitchLayer into_experts(store, 1, StitchKind::hub_into_experts, kExperts, kWidth, 1e-6);
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

TEST(Stitch, RejectsAnExpertWeightThatLeavesTheHubNothing) {
  ParameterStore store(DType::f32);
  EXPECT_THROW(StitchLayer(store, 0, StitchKind::experts_into_hub, kExperts, kWidth, 0.5),
               InputError);
  EXPECT_THROW(StitchLayer(store, 0, StitchKind::experts_into_hub, kExperts, kWidth, 0.0),
               InputError);
}

// Random values everywhere, so that no gate is saturated and every term is exercised.
std::vector<testing::GradInput> randomize(ParameterStore& store) {
  std::vector<testing::GradInput> inputs;
  uint64_t seed = 100;
  for (Parameter& p : store.parameters()) {
    Tensor r = random_tensor(p.shape, DType::f64, seed++);
    Stream stream;
    ops::copy(r, p.value, stream);
    inputs.push_back({p.name, p.value, p.grad});
  }
  return inputs;
}

TEST(Stitch, ExpertsIntoHubGradientsMatchFiniteDifferences) {
  Stream stream;
  ParameterStore store(DType::f64);
  StitchLayer layer(store, 0, StitchKind::experts_into_hub, kExperts, kWidth, 1e-3);
  store.allocate(1);
  std::vector<testing::GradInput> inputs = randomize(store);
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
  layer.mix_into_hub_backward(hub, experts, saved, projection, dhub, dexperts, stream);
  inputs.push_back({"hub", hub, dhub});
  inputs.push_back({"code", experts[0], dexperts[0]});
  inputs.push_back({"bible", experts[1], dexperts[1]});
  EXPECT_TRUE(testing::gradients_match(loss, inputs));
}

TEST(Stitch, HubIntoExpertsGradientsMatchFiniteDifferences) {
  Stream stream;
  ParameterStore store(DType::f64);
  StitchLayer layer(store, 0, StitchKind::hub_into_experts, kExperts, kWidth, 1e-3);
  store.allocate(1);
  std::vector<testing::GradInput> inputs = randomize(store);
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
