// moe-train --plan's arithmetic (trainer/memory_plan.h): parameter, gradient, optimizer and
// activation bytes of a tiny model worked out by hand from its shapes, in several layouts and
// both precisions; and the plan against the host allocator's measured peak of real training
// steps.
#include <cstdio>

#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/error.h"
#include "tests/support/text_dataset.h"
#include "tests/support/tiny_run.h"
#include "trainer/make_model.h"
#include "trainer/memory_plan.h"
#include "trainer/train_step.h"

namespace moe {
namespace {

// Two blocks (a dense one, then an MoE one with 4 experts, top-2), d_model 8, 2 heads of 4 over 2
// kv heads, ffn_hidden 16, expert_hidden 8, vocabulary 64, tied embeddings; 2 sequences of 4
// tokens per micro-batch (N = 8 tokens).
Config hand_config() {
  Config c;
  c.model.vocab_size = 64;
  c.model.d_model = 8;
  c.model.n_layers = 2;
  c.model.n_heads = 2;
  c.model.n_kv_heads = 2;
  c.model.ffn_hidden = 16;
  c.model.max_seq_len = 4;
  c.moe.num_experts = 4;
  c.moe.top_k = 2;
  c.moe.expert_hidden = 8;
  c.moe.first_k_dense = 1;
  c.data.seq_len = 4;
  c.train.micro_batch_size = 2;
  return c;
}

// Parameters of the hand config on one rank:
//   embedding [64,8] 512, final_norm 8
//   block 0: two norms 2 x 8; wq, wk, wv, wo [8,8] 4 x 64; MLP w_gate, w_up [16,8], w_down [8,16]
//            3 x 128: 16 + 256 + 384 = 656
//   block 1: norms 16, attention 256, router gate [4,8] 32, experts w_gate, w_up, w_down
//            [4,8,8] 3 x 256 = 768: 1072
//   total 512 + 8 + 656 + 1072 = 2248, of which 768 experts and 1480 dense.
constexpr int64_t kElements = 2248;
// Each of the 2 attention layers holds its RoPE frequencies, f64 [head_dim / 2 = 2]: 2 x 16.
constexpr int64_t kRopeTables = 32;

TEST(MemoryPlan, OneRankF32CountsMastersGradientsAndMoments) {
  const MemoryPlan plan = plan_memory(hand_config(), 1);
  ASSERT_EQ(plan.ranks.size(), 1u);
  const RankMemory& r = plan.worst();
  EXPECT_EQ(r.parameter_elements, kElements);
  EXPECT_EQ(r.parameters, kElements * 4);
  EXPECT_EQ(r.gradients, kElements * 4);
  EXPECT_EQ(r.optimizer, kElements * 8);
  EXPECT_EQ(r.compute_copy, 0);
  EXPECT_EQ(r.rope_tables, kRopeTables);
  EXPECT_EQ(r.optimizer_buffers, 0);
  EXPECT_EQ(plan.expert_rows, 16);  // 8 tokens x top-2 on the one rank
}

// Activations, f32 (4 bytes; a [N,D] tensor is 8 x 8 x 4 = 256 bytes):
//   attention keeps q, k, v, out [8, 8] 4 x 256 = 1024 and lse [2 seqs, 2 heads, 4] f32 64: 1088
//   a block keeps x, attn_in, h, ffn_in 4 x 256, two rstd [8] 2 x 32, attention 1088: 2176, plus
//     dense: gate, up, hidden [8,16] 3 x 512 = 1536 -> 3712
//     MoE (16 rows = 8 tokens x 2, all on this rank): router logits, scores [8,4] 2 x 128, probs
//       and ids [8,2] 2 x 64, lse 32 = 416; share slots and gather i32 [16] 2 x 64 = 128;
//       permuted and expert_out [16,8] 2 x 512; gate, up, hidden [16,8] 3 x 512; y_slots [16,8]
//       512: 416 + 128 + 1024 + 1536 + 512 = 3616 -> 5792
//   the model keeps inputs, targets, positions i32 [8] 3 x 32, the last output and normed 2 x 256,
//     final rstd and lse 2 x 32, logits [8,64] 2048: 2720
//   backward of the head: dlogits 2048, dnormed and dx 2 x 256: 2560, with everything held:
//     2720 + 3712 + 5792 + 2560 = 14784
//   backward of the MoE block: dout and dprev 2 x 256, dffn_in 256, and inside the MoE layer
//     dy_slots [16,8] 512 and dprobs [8,2] 64, then dexpert_out (the combine's rows) and
//     dpermuted 2 x 512 with the largest call: the experts' backward workspace, dhidden, dgate,
//     dup for all 16 rows [16,8] 3 x 512 = 1536: 576 + 1024 + 1536 = 3136. The attention backward
//     needs less (dffn_in, dh, dattn_in 768, dout, dq, dk, dv 1024, dunrotated 256 = 2048 < 256 +
//     3136). 2720 + 3712 + 5792 + 512 + 256 + 3136 = 16128: the peak.
TEST(MemoryPlan, ActivationsF32WithAndWithoutRecompute) {
  const RankMemory r = plan_memory(hand_config(), 1).worst();
  EXPECT_EQ(r.activations, 16128);
  EXPECT_EQ(r.peak_block, 1);
  // Recompute: the blocks keep x (256 each); the MoE block's backward rebuilds its 5792 bytes:
  //   2720 + 2 x 256 + 512 (dout, dprev) + 5792 + 256 + 3136 = 12928
  //   (the dense block's: 2720 + 256 + 512 + 3712 + 2048 = 9248; the head's 2720 + 512 + 2560)
  EXPECT_EQ(r.activations_recompute, 12928);
  EXPECT_EQ(r.peak_block_recompute, 1);
  EXPECT_EQ(r.total, kElements * 16 + kRopeTables + 16128);
  Config c = hand_config();
  c.train.recompute = true;
  EXPECT_EQ(plan_memory(c, 1).worst().total, kElements * 16 + kRopeTables + 12928);
}

// bf16: activations 2 bytes ([N,D] = 128), the rstd, lse, router and logits f32; a bf16 copy of
// every parameter (2 x 2248 = 4496).
//   attention 512 + lse 64 = 576; a block 4 x 128 + 64 + 576 = 1152, dense + 768 = 1920,
//   MoE + 416 (router, f32) + 128 + 2 x 256 + 3 x 256 + 256 = 3232
//   model: 96 + 2 x 128 + 2 x 32 + logits 2048 = 2464
//   head backward: dlogits f32 2048 and its bf16 copy 1024, dnormed and dx 2 x 128: 3328;
//     2464 + 1920 + 3232 + 3328 = 10944: the peak (the MoE block's backward: 2464 + 1920 + 3232
//     + 256 + 128 + dy_slots 256 + dprobs 64 + 2 x 256 + router 288 = 9120)
TEST(MemoryPlan, Bf16AddsTheComputeCopyAndHalvesMostActivations) {
  Config c = hand_config();
  c.train.precision = Precision::bf16;
  const RankMemory r = plan_memory(c, 1).worst();
  EXPECT_EQ(r.parameters, kElements * 4);
  EXPECT_EQ(r.gradients, kElements * 4);
  EXPECT_EQ(r.optimizer, kElements * 8);
  EXPECT_EQ(r.compute_copy, kElements * 2);
  EXPECT_EQ(r.activations, 10944);
  EXPECT_EQ(r.peak_block, -1);  // the LM head's backward
  EXPECT_EQ(r.total, kElements * 18 + kRopeTables + 10944);
}

// tp = 2: the embedding [32,8] 256, final_norm 8; block 0: norms 16, wq, wk, wv [4,8] and wo
// [8,4] 4 x 32, MLP [8,8] 3 x 64: 336; block 1: norms 16, attention 128, router 32 (replicated),
// whole experts 768: 944. 256 + 8 + 336 + 944 = 1544 on each rank.
TEST(MemoryPlan, TensorParallelSplitsHeadsVocabularyAndMlp) {
  Config c = hand_config();
  c.parallel.tp = 2;
  const MemoryPlan plan = plan_memory(c, 2);
  EXPECT_EQ(plan.tp, 2);
  EXPECT_EQ(plan.dp, 1);
  ASSERT_EQ(plan.ranks.size(), 2u);
  for (const RankMemory& r : plan.ranks) EXPECT_EQ(r.parameter_elements, 1544);
  EXPECT_FALSE(plan.ranks_differ());
  EXPECT_EQ(plan.expert_rows, 8);  // whole experts run on each TP rank's half of the 16 rows
}

// ep = 2: each rank holds 2 of the 4 experts, [2,8,8] x 3 = 384: 2248 - 384 = 1864; balanced,
// the 2 x 16 rows of the EP group spread evenly: 16 per rank.
TEST(MemoryPlan, ExpertParallelSplitsTheExperts) {
  Config c = hand_config();
  c.parallel.ep = 2;
  const MemoryPlan plan = plan_memory(c, 2);
  ASSERT_EQ(plan.ranks.size(), 2u);
  for (const RankMemory& r : plan.ranks) {
    EXPECT_EQ(r.parameter_elements, 1864);
    EXPECT_EQ(r.optimizer, 1864 * 8);
  }
  EXPECT_EQ(plan.expert_rows, 16);
}

// ZeRO-1 over dp = 3: the dense range 1480 in slices of 494 (494, 494, 492), the expert range 768
// over edp = 3 in slices of 256: moments 8 x (494 + 256) = 6000 on ranks 0 and 1, 8 x (492 + 256)
// = 5984 on rank 2. Parameters and gradients stay whole.
TEST(MemoryPlan, ZeroShardsTheMomentsAndTheWorstRankIsShown) {
  Config c = hand_config();
  c.parallel.zero = 1;
  const MemoryPlan plan = plan_memory(c, 3);
  ASSERT_EQ(plan.ranks.size(), 3u);
  EXPECT_EQ(plan.ranks[0].optimizer, 6000);
  EXPECT_EQ(plan.ranks[1].optimizer, 6000);
  EXPECT_EQ(plan.ranks[2].optimizer, 5984);
  EXPECT_EQ(plan.ranks[2].gradients, kElements * 4);
  EXPECT_TRUE(plan.ranks_differ());
  EXPECT_EQ(plan.worst().rank, 0);
  const std::string report = plan_report(plan, c, std::nullopt);
  EXPECT_NE(report.find("the worst, rank 0"), std::string::npos) << report;
}

// ZeRO-1 over dp = 2: slices of 740 (dense) and 384 (experts). The step keeps both gradient slices
// and, for the dense group, a padded buffer of 2 x 740 and a slice of 740 to gather into:
// (740 + 384 + 1480 + 740) x 4 = 13376 bytes, less than the activations.
TEST(MemoryPlan, ZeroStepBuffers) {
  Config c = hand_config();
  c.parallel.zero = 1;
  const RankMemory r = plan_memory(c, 2).worst();
  EXPECT_EQ(r.optimizer, 8 * (740 + 384));
  EXPECT_EQ(r.optimizer_buffers, 13376);
  EXPECT_EQ(r.total, kElements * 8 + 8 * (740 + 384) + kRopeTables + 16128);
}

// FSSDP over 3 ranks: the 4 experts of the MoE layer have one owner each, so one rank owns 2
// (1480 + 2 x 192 = 1864 elements) and two own 1 (1672). With one copy slot a rank holds one more
// expert [8,8] x 3 = 192 elements, 768 bytes in f32: kept from forward to backward (one MoE layer),
// plus its gradient in backward: 1536 bytes.
TEST(MemoryPlan, FssdpOwnersDifferAndTheirCopiesCount) {
  Config c = hand_config();
  c.parallel.experts = ExpertPlacement::fssdp;
  c.fssdp.slots = 1;
  const MemoryPlan plan = plan_memory(c, 3);
  EXPECT_EQ(plan.ep, 3);
  ASSERT_EQ(plan.ranks.size(), 3u);
  int64_t owned = 0;
  for (const RankMemory& r : plan.ranks) {
    owned += r.parameter_elements - 1480;
    EXPECT_EQ(r.fssdp_copies, 1536);
  }
  EXPECT_EQ(owned, 768);
  EXPECT_TRUE(plan.ranks_differ());
  EXPECT_EQ(plan.worst().parameter_elements, 1864);
}

TEST(MemoryPlan, LayoutsThatDoNotFitTheWorldAreRefused) {
  Config c = hand_config();
  c.parallel.tp = 2;
  EXPECT_THROW(plan_memory(c, 3), InputError);
  c.parallel.tp = 1;
  c.parallel.ep = 2;
  EXPECT_THROW(plan_memory(c, 3), InputError);  // ep 2 does not divide dp 3
}

TEST(MemoryPlan, ByteSizes) {
  EXPECT_EQ(parse_byte_size("80GiB", "x"), int64_t{80} << 30);
  EXPECT_EQ(parse_byte_size("80GB", "x"), int64_t{80'000'000'000});
  EXPECT_EQ(parse_byte_size("141GiB", "x"), int64_t{141} << 30);
  EXPECT_EQ(parse_byte_size("1.5TiB", "x"), int64_t{3} << 39);
  EXPECT_EQ(parse_byte_size("512mib", "x"), int64_t{512} << 20);
  EXPECT_EQ(parse_byte_size("1000000", "x"), 1'000'000);
  for (const char* bad : {"", "80 gigs", "-5GiB", "GiB", "80GiBs", "0", "1e3"})
    EXPECT_THROW(parse_byte_size(bad, "--device-memory"), InputError) << bad;
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(int64_t{3} << 30), "3.00 GiB");
}

// The plan against reality: a few real steps of reduced configs on the CPU, where every tensor
// comes from the host allocator. Parameters, gradients, moments (and a bf16 compute copy) and the
// RoPE tables are allocated before the steps and must equal the plan's bytes exactly; the rise of
// the allocator's peak over what is alive before a step is one micro-batch's activations and
// temporaries, which must be within 10% of the plan's. Outside tensors (and so outside both): the
// data loader's host vectors and the CPU kernels' scratch vectors. A case is one line; bf16 ones
// join when the bf16 step exists.
struct Measured {
  const char* name;
  bool moe, recompute;
  Precision precision;
  double capacity_factor = 0;  // > 0: the plan counts the capacity bound, an upper bound
};

class PlanAgainstPeak : public ::testing::TestWithParam<Measured> {};

const std::string& gpl_dataset() {
  static const std::string prefix = testing::write_text_dataset(
      "/usr/share/common-licenses/GPL-3", ::testing::TempDir() + "moe_memory_plan/gpl");
  return prefix;
}

TEST_P(PlanAgainstPeak, PlanIsWithinTenPercentOfTheMeasuredPeak) {
  const Measured& m = GetParam();
  Config c = testing::tiny_run(gpl_dataset());
  c.model.n_layers = 4;
  c.model.qk_norm = true;
  c.model.qkv_bias = true;
  c.model.tie_embeddings = false;
  c.moe.first_k_dense = m.moe ? 1 : 4;
  c.moe.shared_experts = 1;
  c.moe.shared_expert_hidden = 32;
  c.moe.shared_expert_gate = true;
  c.moe.capacity_factor = m.capacity_factor;
  c.train.micro_batch_size = 8;
  c.train.recompute = m.recompute;
  c.train.precision = m.precision;
  c.data.val_fraction = 0;
  c.validate();
  const RankMemory plan = plan_memory(c, 1).worst();

  const int64_t before = host_bytes_in_use();
  ParameterStore store(DType::f32);
  std::unique_ptr<LanguageModel> model = make_model(c, store, {});
  store.allocate(c.train.seed);
  AdamW optimizer(store, c.train);
  EXPECT_EQ(host_bytes_in_use() - before, plan.parameters + plan.gradients + plan.optimizer +
                                              plan.compute_copy + plan.rope_tables);
  std::unique_ptr<TokenLoader> loader = make_token_loader(c.data);
  Stream stream;
  train_step(*model, optimizer, store, *loader, c.train, {}, 1e-3, 1, stream);  // first-step state
  const int64_t resident = host_bytes_in_use();
  reset_host_bytes_peak();
  for (int64_t step = 2; step <= 3; ++step)
    train_step(*model, optimizer, store, *loader, c.train, {}, 1e-3, step, stream);
  const int64_t measured = host_bytes_peak() - resident;
  const int64_t planned = m.recompute ? plan.activations_recompute : plan.activations;
  std::printf("[plan vs peak] %s: activations planned %lld B, measured %lld B (%.4f)\n", m.name,
              static_cast<long long>(planned), static_cast<long long>(measured),
              static_cast<double>(planned) / static_cast<double>(measured));
  EXPECT_NEAR(static_cast<double>(planned) / static_cast<double>(measured), 1.0, 0.10)
      << "planned " << planned << " bytes of activations, measured " << measured;
  EXPECT_NEAR(static_cast<double>(plan.total) / static_cast<double>(host_bytes_peak() - before),
              1.0, 0.10);
}

INSTANTIATE_TEST_SUITE_P(
    Precisions, PlanAgainstPeak,
    ::testing::Values(Measured{"dense", false, false, Precision::f32},
                      Measured{"dense_recompute", false, true, Precision::f32},
                      Measured{"moe", true, false, Precision::f32},
                      Measured{"moe_recompute", true, true, Precision::f32},
                      Measured{"moe_capacity", true, false, Precision::f32, 1.0},
                      Measured{"dense_bf16", false, false, Precision::bf16},
                      Measured{"moe_bf16", true, false, Precision::bf16},
                      Measured{"moe_bf16_recompute", true, true, Precision::bf16}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace moe
