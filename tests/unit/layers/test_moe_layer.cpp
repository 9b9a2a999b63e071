// The MoE layer against simpler models of itself: one expert with top-1 is the dense MLP, the
// grouped expert GEMMs equal the row-by-row reference, the load-balancing loss takes its documented
// value when routing is uniform, and the expert bias moves against the load.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "layers/moe_layer.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"
#include "tests/unit/layers/tiny_config.h"

namespace moe {
namespace {

// Both halves of a router's forward, as MoeLayer runs them.
void route(const Router& router, const Tensor& x, int64_t seq_len, const CountSource& source,
           RouterSaved& saved, Stream& stream) {
  router.forward(x, seq_len, source, saved, stream);
  router.finish_forward(ops::to_host(saved.reads, stream), source, saved);
}

using testing::random_tensor;

void copy_values(const Parameter& from, Parameter& to) {
  ASSERT_EQ(from.value.numel(), to.value.numel()) << from.name << " -> " << to.name;
  Stream stream;
  ops::copy(from.value, to.value, stream);
}

TEST(MoeLayer, OneExpertTopOneIsTheDenseMlp) {
  MoeConfig moe_config;
  moe_config.num_experts = 1;
  moe_config.top_k = 1;
  moe_config.expert_hidden = 12;
  moe_config.z_loss_coeff = 0;  // with one expert the z-loss still pulls on the router logit
  const int64_t d_model = 8, tokens = 6;
  ParameterStore store(DType::f64);
  MoeLayer layer(store, "moe", moe_config, d_model, 0.3);
  Mlp mlp(store, "mlp", d_model, moe_config.expert_hidden, 0.3);
  store.allocate(3);
  for (const char* w : {"w_gate", "w_up", "w_down"})
    copy_values(store.find(std::string("mlp.") + w), store.find(std::string("moe.experts.") + w));

  Stream stream;
  const Tensor x = random_tensor({tokens, d_model}, DType::f64, 4);
  const Tensor dy = random_tensor({tokens, d_model}, DType::f64, 5);
  MoeSaved moe_saved;
  Tensor moe_y = Tensor::empty({tokens, d_model}, DType::f64);
  layer.forward(x, tokens, {}, moe_saved, moe_y, stream);
  FfnSaved mlp_saved = ffn_saved_for(tokens, moe_config.expert_hidden, DType::f64);
  Tensor mlp_y = Tensor::empty({tokens, d_model}, DType::f64);
  mlp.forward(x, mlp_saved, mlp_y, stream);
  EXPECT_TRUE(testing::all_close(moe_y, mlp_y, 1e-15, 1e-13));

  Tensor moe_dx = Tensor::empty({tokens, d_model}, DType::f64);
  Tensor mlp_dx = Tensor::empty({tokens, d_model}, DType::f64);
  layer.backward(x, moe_saved, dy, 1.0, moe_dx, stream);
  mlp.backward(x, dy, mlp_saved, mlp_dx, false, stream);
  EXPECT_TRUE(testing::all_close(moe_dx, mlp_dx, 1e-14, 1e-12));
  for (const char* w : {"w_gate", "w_up", "w_down"})
    EXPECT_TRUE(testing::all_close(store.find(std::string("moe.experts.") + w)
                                       .grad.view(store.find(std::string("mlp.") + w).shape),
                                   store.find(std::string("mlp.") + w).grad, 1e-14, 1e-12))
        << w;
}

TEST(MoeLayer, GroupedExpertsEqualTheRowByRowReference) {
  Config c = testing::tiny_moe_config();
  c.moe.num_experts = 5;
  c.moe.top_k = 3;
  const int64_t d_model = c.model.d_model, tokens = 12;
  struct Run {
    Tensor y, dx, grads;
  };
  auto run = [&](ExpertsImpl impl) {
    ParameterStore store(DType::f64);
    MoeLayer layer(store, "moe", c.moe, d_model, 0.4);
    store.allocate(5);
    Stream stream;
    const Tensor x = random_tensor({tokens, d_model}, DType::f64, 6);
    const Tensor dy = random_tensor({tokens, d_model}, DType::f64, 7);
    MoeSaved saved;
    Run r{Tensor::empty({tokens, d_model}, DType::f64),
          Tensor::empty({tokens, d_model}, DType::f64),
          {}};
    layer.forward(x, tokens, {}, saved, r.y, stream, impl);
    layer.backward(x, saved, dy, 1.0, r.dx, stream, impl);
    r.grads = store.grads().clone();
    return r;
  };
  const Run grouped = run(ExpertsImpl::grouped), sequential = run(ExpertsImpl::sequential);
  EXPECT_TRUE(testing::all_close(grouped.y, sequential.y, 1e-14, 1e-12));
  EXPECT_TRUE(testing::all_close(grouped.dx, sequential.dx, 1e-14, 1e-12));
  EXPECT_TRUE(testing::all_close(grouped.grads, sequential.grads, 1e-14, 1e-12));
}

// With a zero router every score is equal, so P_i = 1/E (sigmoid scores of 1/2 are normalized per
// token first) and L = E * sum_i f_i * (1/E) = sum_i f_i: 1 for megatron and switch, k for hf
// (METHODS.md §5.1), however the ties were broken.
TEST(MoeLayer, AuxLossTakesItsDocumentedValueUnderUniformScores) {
  for (const AuxLossNorm norm : {AuxLossNorm::megatron, AuxLossNorm::switch_, AuxLossNorm::hf})
    for (const AuxLossType type : {AuxLossType::micro_batch, AuxLossType::sequence})
      for (const RouterScore score : {RouterScore::softmax, RouterScore::sigmoid}) {
        MoeConfig moe_config;
        moe_config.num_experts = 4;
        moe_config.top_k = 2;
        moe_config.aux_loss_norm = norm;
        moe_config.aux_loss_type = type;
        moe_config.router_score = score;
        ParameterStore store(DType::f64);
        Router router(store, "router", moe_config, 8, 0.1);
        store.allocate(1);
        Stream stream;
        ops::fill(store.values(), 0.0, stream);
        RouterSaved saved;
        route(router, random_tensor({12, 8}, DType::f64, 8), 3, {}, saved, stream);
        const double expected = norm == AuxLossNorm::hf ? 2.0 : 1.0;
        EXPECT_NEAR(saved.aux_loss, expected, 1e-14) << norm << " " << type;
        EXPECT_NEAR(saved.z_loss, std::log(4.0) * std::log(4.0), 1e-14);
      }
}

TEST(MoeLayer, ExpertBiasMovesAgainstTheLoad) {
  MoeConfig moe_config;
  moe_config.num_experts = 4;
  moe_config.expert_bias = true;
  moe_config.expert_bias_rate = 0.125;
  ParameterStore store(DType::f32);
  Router router(store, "router", moe_config, 8, 0.1);
  store.allocate(1);
  router.update_expert_bias({10, 2, 5, 3});  // mean 5
  EXPECT_EQ(store.buffers().front().value.to_vector<float>(),
            (std::vector<float>{-0.125f, 0.125f, 0.0f, 0.125f}));
}

TEST(MoeLayer, RouterSkewMakesTheFirstExpertsWinWithoutChangingTheGates) {
  MoeConfig plain, skewed;
  plain.num_experts = skewed.num_experts = 4;
  plain.renormalize = skewed.renormalize = false;  // gates = the chosen scores
  skewed.router_skew = 8;  // up to 2 on scores of about 1/4: experts 0 and 1 win
  ParameterStore store(DType::f64);
  const Router a(store, "a", plain, 8, 0.1), b(store, "b", skewed, 8, 0.1);
  store.allocate(3);
  copy_values(store.find("b.gate.weight"), store.find("a.gate.weight"));
  Stream stream;
  const Tensor x = random_tensor({16, 8}, DType::f64, 4);
  RouterSaved sa, sb;
  a.forward(x, 16, {}, sa, stream);
  b.forward(x, 16, {}, sb, stream);
  for (int64_t n = 0; n < 16; ++n) {
    EXPECT_EQ(sb.expert_ids.data<int32_t>()[2 * n], 0) << n;
    EXPECT_EQ(sb.expert_ids.data<int32_t>()[2 * n + 1], 1) << n;
    // The gates are the chosen experts' scores, unbiased.
    for (int j = 0; j < 2; ++j)
      EXPECT_EQ(sb.probs.data<double>()[2 * n + j],
                sb.scores.data<double>()[n * 4 + sb.expert_ids.data<int32_t>()[2 * n + j]]);
  }
  EXPECT_EQ(sa.scores.to_vector<double>(), sb.scores.to_vector<double>());
}

// Global batch on one rank: the counts are the running mean over the step's micro-batches, so the
// first micro-batch of a step has the micro-batch loss and the second averages both count vectors.
TEST(MoeLayer, GlobalBatchAuxLossAveragesCountsOverTheStep) {
  MoeConfig global, micro;
  global.aux_loss_type = AuxLossType::global_batch;
  ParameterStore store(DType::f64);
  const Router global_router(store, "global", global, 8, 0.5),
      micro_router(store, "micro", micro, 8, 0.5);
  store.allocate(2);
  copy_values(store.find("micro.gate.weight"), store.find("global.gate.weight"));
  Stream stream;
  const Tensor first = random_tensor({6, 8}, DType::f64, 9),
               second = random_tensor({6, 8}, DType::f64, 10);
  RouterSaved g1, g2, m1, m2, eval;
  global_router.begin_step(nullptr);
  route(global_router, first, 6, {nullptr, true}, g1, stream);
  route(global_router, second, 6, {nullptr, true}, g2, stream);
  route(global_router, second, 6, {nullptr, false}, eval, stream);  // evaluation: not counted
  route(micro_router, first, 6, {}, m1, stream);
  route(micro_router, second, 6, {}, m2, stream);
  EXPECT_DOUBLE_EQ(g1.aux_loss, m1.aux_loss);
  EXPECT_DOUBLE_EQ(eval.aux_loss, m2.aux_loss);
  for (int64_t e = 0; e < 8; ++e)
    EXPECT_DOUBLE_EQ(g2.aux.counts.data<double>()[e],
                     (m1.aux.counts.data<double>()[e] + m2.aux.counts.data<double>()[e]) / 2);
  RouterSaved next;
  global_router.begin_step(nullptr);
  route(global_router, second, 6, {nullptr, true}, next, stream);
  EXPECT_DOUBLE_EQ(next.aux_loss, m2.aux_loss) << "begin_step must empty the buffer";
}

}  // namespace
}  // namespace moe
