// Whole-model fp64 gradient checks: every parameter of a tiny decoder, dense (also with yarn rope
// scaling), in each MoE variant, with multi-head latent attention and multi-token prediction,
// against central finite differences of the full objective (language-model loss plus the auxiliary
// losses). Recompute must give bit-identical gradients.
#include <algorithm>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "layers/model.h"
#include "tests/support/gradcheck.h"
#include "tests/support/latent_attention.h"
#include "tests/support/tolerance.h"
#include "tests/unit/layers/tiny_config.h"

namespace moe {
namespace {

// prepare runs after initialization, to set state such as the expert bias.
void expect_gradients_match(const Config& config,
                            const std::function<void(ParameterStore&)>& prepare = {}) {
  ParameterStore store(DType::f64);
  Model model(config.model, config.moe, store);
  store.allocate(7);
  if (prepare) prepare(store);
  const testing::TinyBatch batch = testing::tiny_batch(config);
  Stream stream;
  const double loss_scale = 0.75;
  model.forward(batch.inputs, batch.targets, true, stream);
  model.backward(loss_scale, stream);
  auto loss = [&] {
    return loss_scale * model.forward(batch.inputs, batch.targets, false, stream).total;
  };
  std::vector<testing::GradInput> inputs;
  for (Parameter& p : store.parameters()) inputs.push_back({p.name, p.value, p.grad});
  EXPECT_TRUE(testing::gradients_match(loss, inputs));
}

TEST(ModelGradients, Dense) {
  Config c = testing::tiny_moe_config();
  c.moe.first_k_dense = c.model.n_layers;
  expect_gradients_match(c);
}

// yarn rope scaling: scaled frequencies and cos, sin times the attention factor (0.1 ln 4 + 1).
TEST(ModelGradients, DenseWithYarnRopeScaling) {
  Config c = testing::tiny_moe_config();
  c.moe.first_k_dense = c.model.n_layers;
  c.model.rope_scaling = {.type = RopeScalingType::yarn, .factor = 4, .original_max_seq_len = 2};
  expect_gradients_match(c);
}

TEST(ModelGradients, MoeSoftmaxRouterWithAuxAndZLoss) {
  expect_gradients_match(testing::tiny_moe_config());
}

TEST(ModelGradients, MoeWithSharedExpertsQkNormBiasAndUntiedHead) {
  Config c = testing::tiny_moe_config();
  c.moe.shared_experts = 2;
  c.moe.shared_expert_hidden = 3;
  c.moe.first_k_dense = 1;
  c.model.n_layers = 3;
  c.model.qk_norm = true;
  c.model.qkv_bias = true;
  c.model.tie_embeddings = false;
  expect_gradients_match(c);
}

// Qwen2-MoE's shared expert: its output scaled by a learned sigmoid gate per token.
TEST(ModelGradients, MoeWithGatedSharedExpert) {
  Config c = testing::tiny_moe_config();
  c.moe.shared_experts = 1;
  c.moe.shared_expert_hidden = 3;
  c.moe.shared_expert_gate = true;
  c.moe.renormalize = false;
  expect_gradients_match(c);
}

// OLMoE's QK-norm: one RMSNorm over the whole q and k projections, a weight per element.
TEST(ModelGradients, MoeWithQkNormOverWholeProjectionsAndNoRenormalization) {
  Config c = testing::tiny_moe_config();
  c.model.qk_norm = true;
  c.model.qk_norm_scope = QkNormScope::projection;
  c.moe.renormalize = false;
  c.model.tie_embeddings = false;
  expect_gradients_match(c);
}

TEST(ModelGradients, MoeWithCapacityFactorDroppingByProbsAndByPosition) {
  for (const DropPolicy policy : {DropPolicy::probs, DropPolicy::position}) {
    Config c = testing::tiny_moe_config();
    c.moe.capacity_factor = 0.5;
    c.moe.drop_policy = policy;
    SCOPED_TRACE(policy);
    expect_gradients_match(c);
  }
}

TEST(ModelGradients, MoeSigmoidRouterWithScalingSequenceAuxLossAndExpertBias) {
  Config c = testing::tiny_moe_config();
  c.moe.router_score = RouterScore::sigmoid;
  c.moe.routed_scaling = 2.5;
  c.moe.aux_loss_type = AuxLossType::sequence;
  c.moe.aux_loss_norm = AuxLossNorm::hf;
  c.moe.expert_bias = true;
  // A bias that changes which experts are chosen, so that the gates differ from the plain top-k.
  expect_gradients_match(c, [](ParameterStore& store) {
    for (Buffer& b : store.buffers()) {
      ASSERT_NE(b.name.find("expert_bias"), std::string::npos) << b.name;
      const std::vector<double> bias = {0.0, 0.6, -0.6, 0.3};
      std::copy(bias.begin(), bias.end(), b.value.data<double>());
    }
  });
}

// DeepSeek-V3's router: sigmoid scores normalized per token for the sequence-wise loss, a
// group-limited choice (2 groups of 2 experts, keep 1) under a correction bias, routed scaling.
TEST(ModelGradients, MoeDeepSeekV3RoutingWithGroupsAndCorrectionBias) {
  Config c = testing::tiny_moe_config();
  c.moe.router_score = RouterScore::sigmoid;
  c.moe.n_group = 2;
  c.moe.topk_group = 1;
  c.moe.routed_scaling = 2.5;
  c.moe.aux_loss_type = AuxLossType::sequence;
  c.moe.expert_bias = true;
  expect_gradients_match(c, [](ParameterStore& store) {
    for (Buffer& b : store.buffers()) {
      const std::vector<double> bias = {0.0, 0.5, -0.4, 0.2};
      std::copy(bias.begin(), bias.end(), b.value.data<double>());
    }
  });
}

// Multi-head latent attention on the tiny model: 2 heads, a latent of 4, RoPE part 2.
Config latent_attention_config(int q_lora_rank, int nope, int v_head_dim) {
  Config c = testing::tiny_moe_config();
  testing::use_latent_attention(c, {q_lora_rank, 4, nope, 2, v_head_dim});
  return c;
}

// With a query latent; values (5) wider than query and key (2 + 2), which are zero-padded.
TEST(ModelGradients, MoeWithLatentAttentionAndQueryLatent) {
  expect_gradients_match(latent_attention_config(3, 2, 5));
}

// Queries projected directly; query/key wider than values (3 + 2 > 3 pads v); yarn with
// mscale_all_dim scales the softmax by m(4, 0.7)^2 as well as cos and sin.
TEST(ModelGradients, DenseLatentAttentionWithoutQueryLatentUnderYarn) {
  Config c = latent_attention_config(0, 3, 3);
  c.moe.first_k_dense = c.model.n_layers;
  c.model.rope_scaling = {.type = RopeScalingType::yarn,
                          .factor = 4,
                          .original_max_seq_len = 2,
                          .mscale = 1,
                          .mscale_all_dim = 0.7};
  expect_gradients_match(c);
}

// Multi-token prediction two modules deep (their blocks MoE), the head tied to the embedding.
TEST(ModelGradients, MoeWithTwoMultiTokenPredictionModules) {
  Config c = testing::tiny_moe_config();
  c.model.mtp_depth = 2;
  c.model.mtp_loss_weight = 0.5;
  expect_gradients_match(c);
}

// DeepSeek-V3's shape: latent attention, a dense first layer, an untied head, one MTP module.
TEST(ModelGradients, LatentAttentionWithAMultiTokenPredictionModuleAndUntiedHead) {
  Config c = latent_attention_config(3, 2, 3);
  c.moe.first_k_dense = 1;
  c.model.tie_embeddings = false;
  c.model.mtp_depth = 1;
  expect_gradients_match(c);
}

void expect_recompute_gives_identical_gradients(const Config& c, bool bf16) {
  auto gradients = [&c, bf16](bool recompute) {
    ParameterStore store(DType::f32);
    Model model(c.model, c.moe, store, {}, ModelOptions{.recompute = recompute, .bf16 = bf16});
    store.allocate(11);
    const testing::TinyBatch batch = testing::tiny_batch(c);
    Stream stream;
    const ModelOutput out = model.forward(batch.inputs, batch.targets, true, stream);
    model.backward(1.0, stream);
    std::vector<float> grads = store.grads().to_vector<float>();
    grads.push_back(static_cast<float>(out.total));
    return grads;
  };
  const std::vector<float> plain = gradients(false), recomputed = gradients(true);
  ASSERT_EQ(plain.size(), recomputed.size());
  int64_t nonzero = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(plain[i], recomputed[i]) << "element " << i;
    nonzero += plain[i] != 0.0f;
  }
  EXPECT_GT(nonzero, static_cast<int64_t>(plain.size()) / 2) << "gradients are mostly zero";
}

// In f32 and in bf16 (whose rebuilt activations round exactly as the first forward's did), with
// either attention (the latent one with a multi-token prediction module).
TEST(ModelGradients, RecomputeGivesIdenticalGradients) {
  for (const bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    expect_recompute_gives_identical_gradients(testing::tiny_moe_config(), bf16);
    Config with_mtp = latent_attention_config(3, 2, 3);
    with_mtp.model.mtp_depth = 1;
    expect_recompute_gives_identical_gradients(with_mtp, bf16);
  }
}

// Two micro-batches of half the sequences, each backward with loss scale 1/2, give the gradient of
// the whole batch (the aux loss is off: it is defined per micro-batch, so it differs by design).
TEST(ModelGradients, AccumulatingHalvesEqualsTheWholeBatch) {
  Config c = testing::tiny_moe_config();
  c.moe.aux_loss_coeff = 0;
  ParameterStore store(DType::f64);
  Model model(c.model, c.moe, store);
  store.allocate(13);
  const testing::TinyBatch batch = testing::tiny_batch(c);
  for (int32_t& t : std::span(batch.targets.data<int32_t>(), batch.targets.numel()))
    if (t == Model::ignore_index) t = 1;  // equal token counts per half keep the means comparable
  Stream stream;
  model.forward(batch.inputs, batch.targets, true, stream);
  model.backward(1.0, stream);
  const Tensor whole = store.grads().clone();
  store.zero_grads(stream);
  for (int64_t half = 0; half < 2; ++half) {
    model.forward(batch.inputs.narrow(half, 1), batch.targets.narrow(half, 1), true, stream);
    model.backward(0.5, stream);
  }
  EXPECT_TRUE(testing::all_close(store.grads(), whole, 1e-13, 1e-10));
}

}  // namespace
}  // namespace moe
