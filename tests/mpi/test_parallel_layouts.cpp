// Any layout trains the same model (issue: distributed training). For each process-grid layout
// that fits the job's ranks (data, tensor and expert parallel, with and without ZeRO-1 and
// expert_tp, and experts fully sharded with FSSDP), every rank also builds the single-rank
// reference (same seed, the whole global batch,
// no communication) and compares:
// - one global batch: the losses (the global-batch aux loss included, computed on N ranks against
//   the single rank's concatenated batch), the expert loads and every parameter's gradient,
//   gathered from all ranks' blocks to its global shape;
// - 30 optimizer steps on real text: the loss curve, the final parameters and the expert bias;
// - copies of one block on several ranks (TP copies such as the router, DP replicas) are
//   bit-identical, so the router decides the same on every TP rank;
// - duplicate token dropping: with tp = 2 each TP rank's all-to-all moves its share of the rows,
//   the shares adding up exactly to what the same data-parallel rank moves with tp = 1.
//
// Tolerance: fp32, and the runs sum the same terms in a different order (per-rank partial sums,
// then all-reduces; per-shard logsumexps combined), so results differ by a few float roundings:
// relative 1e-4 with an absolute floor of 1e-7 for gradients, which a missing 1/dp, a missing rank,
// a wrong shard offset or a dropped token exceeds by far. After 30 steps of AdamW (which divides
// by sqrt(v) and so magnifies tiny differences in near-zero gradients) the parameters agree to
// relative 1e-3 with an absolute floor of 1e-5.
//
// bf16 (train.precision: bf16; the reference is the single rank in bf16 too):
// - Without TP, every activation is computed from the same operands in the same order as on one
//   rank (a GEMM row does not depend on the other rows), so the losses and loads are equal. The
//   gradients differ by the f32 sums' order and by the rounding of dlogits to bf16: it is scaled
//   by 1 / (the targets counted on the rank), which differs from one rank's count by a factor
//   that is not a power of two when ranks count different numbers of targets. Bound: normwise
//   within a tenth of bf16's own effect (below).
// - With TP, each rank's partial output of a row-parallel GEMM is rounded to bf16 before the f32
//   sum over TP, where one rank rounds the whole sum once: activations differ by about one bf16
//   rounding, a few routing decisions of near-tied experts flip, and gradients differ by the size
//   of bf16 rounding itself. The bound: each parameter's gradient is no farther from the
//   reference's (normwise) than twice bf16's own effect, the distance between the reference's
//   bf16 and f32 gradients (measured: 0.8 to 0.9 times it); a missing factor or rank moves it by
//   far more.
// - Over 30 steps AdamW magnifies the one-rounding differences, so the loss curve is held to
//   relative 2e-3 (measured: at most 7e-4) and the gradient norm to 0.1 (measured: 0.03).
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "parallel/process_grid.h"
#include "tests/support/global_tensor.h"
#include "tests/support/latent_attention.h"
#include "tests/support/replica.h"
#include "tests/support/tolerance.h"
#include "trainer/expert_resharding.h"

namespace moe {
namespace {

using testing::Layout;
using testing::layout_run;
using testing::Replica;

// The layouts of the issue, by the number of ranks they need;
// {tp, dp, ep, expert_tp, zero, tied, fssdp, rematerialize}. FSSDP over 8 ranks leaves 4 of them
// no expert.
std::vector<Layout> layouts_for(int world) {
  switch (world) {
    case 2:
      return {{1, 2, 1},
              {1, 2, 1, false, true},
              {2, 1, 1},
              {2, 1, 1, true, true, true},
              {1, 2, 2},
              {1, 2, 2, false, true},
              {1, 2, 2, false, false, false, true},
              {1, 2, 2, false, true, false, true}};
    case 4:
      return {{2, 2, 1},
              {2, 2, 1, false, true},
              {1, 4, 4},
              {1, 4, 4, false, true},
              {2, 2, 2},
              {2, 2, 2, true},
              {2, 2, 2, false, true},
              {1, 4, 2, false, true, true},
              {1, 4, 4, false, false, false, true},
              {1, 4, 4, false, false, false, true, true},
              {1, 4, 2, false, false, true, true},
              {1, 4, 4, false, true, false, true},
              {1, 4, 2, false, true, false, true, true},
              {2, 2, 2, false, false, false, true},
              {2, 2, 2, false, true, false, true, true},
              {2, 2, 2, true, false, false, true},
              {2, 2, 2, true, true, false, true, true}};
    case 8:
      return {{2, 4, 2},
              {2, 4, 2, true},
              {2, 4, 2, false, true},
              {2, 4, 2, true, true},
              {1, 8, 4, false, true},
              {1, 8, 8, false, false, false, true},
              {2, 4, 4, false, true, false, true},
              {2, 4, 4, true, true, false, true}};
    default:
      return {};
  }
}

std::string dataset_for(const Communicator& world) {
  return testing::rank_dataset(world, "layouts");
}

// The single-rank reference of a layout's run: no parallelism at all (FSSDP off too).
Config single_rank(Config c) {
  c.parallel = ParallelConfig{};
  return c;
}

// Every parameter's global gradient (or value) equals the reference's; copies agree bit for bit.
void expect_same_parameters(Replica& parallel, Replica& reference, Communicator& world, bool grads,
                            double atol, double rtol) {
  for (Parameter& p : parallel.store.parameters()) {
    const testing::GlobalTensor global = testing::gather_global(p, grads ? p.grad : p.value, world);
    const Parameter& ref = reference.store.find(p.name);
    EXPECT_EQ(global.uncovered, 0) << p.name;
    EXPECT_EQ(global.mismatched, 0) << p.name << ": copies on different ranks differ";
    EXPECT_TRUE(testing::all_close(global.values, grads ? ref.grad : ref.value, atol, rtol))
        << p.name << (grads ? " gradient" : " value");
  }
}

class ParallelLayouts : public ::testing::Test {
 protected:
  void SetUp() override {
    world = mpi_world_communicator();
    layouts = layouts_for(world->size());
    ASSERT_FALSE(layouts.empty()) << "no layouts for " << world->size() << " ranks";
  }
  std::unique_ptr<Communicator> world;
  std::vector<Layout> layouts;
};

// One global batch on the layout and on one rank: losses, loads, tokens and every gradient agree.
// Returns the reference's loads.
std::vector<std::vector<int64_t>> expect_single_rank_gradient(const Config& c, const Layout& layout,
                                                              Communicator& world) {
  ProcessGrid grid(world, layout.tp, layout.dp, layout.ep);
  Replica reference(single_rank(c), {}, false), parallel(c, grid.groups(layout.expert_tp), false);
  Stream stream;
  const StepStats ref = reference.gradients(stream);
  const StepStats par = parallel.gradients(stream);
  EXPECT_NEAR(par.lm_loss, ref.lm_loss, 1e-5 * ref.lm_loss);
  EXPECT_NEAR(par.aux_loss, ref.aux_loss, 1e-5 * ref.aux_loss);
  EXPECT_NEAR(par.z_loss, ref.z_loss, 1e-5 * ref.z_loss);
  EXPECT_EQ(par.loads, ref.loads);
  EXPECT_EQ(par.tokens, ref.tokens);
  expect_same_parameters(parallel, reference, world, true, 1e-7, 1e-4);
  return ref.loads;
}

TEST_F(ParallelLayouts, GradientOfOneGlobalBatchEqualsTheSingleRankGradient) {
  for (const Layout& layout : layouts) {
    SCOPED_TRACE(layout.name());
    expect_single_rank_gradient(layout_run(dataset_for(*world), layout), layout, *world);
  }
}

// DeepSeek-V3's routing: sigmoid scores, group-limited choice (2 groups of 2 experts, the better
// one kept, so a token's two experts are always one group), routed scaling and the expert bias.
TEST_F(ParallelLayouts, GroupLimitedSigmoidRoutingGivesTheSingleRankGradient) {
  for (const Layout& layout : layouts) {
    SCOPED_TRACE(layout.name());
    Config c = layout_run(dataset_for(*world), layout);
    c.moe.router_score = RouterScore::sigmoid;
    c.moe.n_group = 2;
    c.moe.topk_group = 1;
    c.moe.routed_scaling = 2.5;
    for (const std::vector<int64_t>& load : expect_single_rank_gradient(c, layout, *world)) {
      if (!load.empty()) {
        EXPECT_EQ(load[0], load[1]);  // whole groups: {0, 1} or {2, 3}
      }
    }
  }
}

// Multi-head latent attention with a query latent (DeepSeek-V3): the heads split over TP, the
// latent projections and norms replicated with partial gradients.
TEST_F(ParallelLayouts, LatentAttentionGivesTheSingleRankGradient) {
  for (const Layout& layout : layouts) {
    SCOPED_TRACE(layout.name());
    Config c = layout_run(dataset_for(*world), layout);
    testing::use_latent_attention(
        c, {.q_lora_rank = 12, .kv_lora_rank = 16, .nope = 8, .rope = 4, .v = 6});
    expect_single_rank_gradient(c, layout, *world);
  }
}

// Two multi-token prediction modules (MoE blocks: their experts over EP, FSSDP copies and the
// expert bias too) on every layout.
TEST_F(ParallelLayouts, MultiTokenPredictionGivesTheSingleRankGradient) {
  for (const Layout& layout : layouts) {
    SCOPED_TRACE(layout.name());
    Config c = layout_run(dataset_for(*world), layout);
    c.model.mtp_depth = 2;
    expect_single_rank_gradient(c, layout, *world);
  }
}

TEST_F(ParallelLayouts, ThirtyStepsFollowTheSingleRankLossCurve) {
  int resharded = 0, fssdp_layouts = 0;
  for (const Layout& layout : layouts) {
    SCOPED_TRACE(layout.name());
    ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
    const Config c = layout_run(dataset_for(*world), layout);
    Replica reference(single_rank(c), {}, false),
        parallel(c, grid.groups(layout.expert_tp), layout.zero);
    Stream stream;
    const std::vector<int> first_owners =
        layout.fssdp ? parallel.model->fssdp()->owners() : std::vector<int>{};
    for (int64_t step = 0; step < 30; ++step) {
      const StepStats ref = reference.step(step, stream);
      const StepStats par = parallel.step(step, stream);
      ASSERT_NEAR(par.lm_loss, ref.lm_loss, 1e-4 * ref.lm_loss) << "step " << step;
      ASSERT_NEAR(par.grad_norm, ref.grad_norm, 1e-3 * ref.grad_norm) << "step " << step;
    }
    if (layout.fssdp) {
      ++fssdp_layouts;
      resharded += parallel.model->fssdp()->owners() != first_owners;
    }
    expect_same_parameters(parallel, reference, *world, false, 1e-5, 1e-3);
    EXPECT_TRUE(testing::all_close(parallel.store.buffers().front().value,
                                   reference.store.buffers().front().value, 0, 0))
        << "the expert bias moved differently";
  }
  if (fssdp_layouts > 0) {
    EXPECT_GT(resharded, 0) << "no FSSDP layout moved an owner in 30 steps";
  }
}

// Moving every expert to another owner keeps every value and moment, bit for bit.
TEST_F(ParallelLayouts, FssdpReshardingMovesExpertStateExactly) {
  for (const Layout& layout : layouts) {
    if (!layout.fssdp) continue;
    SCOPED_TRACE(layout.name());
    ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
    Replica parallel(layout_run(dataset_for(*world), layout), grid.groups(layout.expert_tp), false);
    Stream stream;
    for (int64_t step = 0; step < 3; ++step) parallel.step(step, stream);
    // Every parameter's value and moments, gathered (a rank without a parameter's rows, and so
    // without its moments, contributes none).
    auto state = [&] {
      std::vector<testing::GlobalTensor> all;
      const std::vector<MomentRun> runs = parallel.optimizer->moment_runs();
      for (const Parameter& p : parallel.store.parameters()) {
        Tensor m = Tensor::empty(p.shape, DType::f32), v = Tensor::empty(p.shape, DType::f32);
        for (const MomentRun& run : runs)
          if (run.parameter == &p) {
            m = run.exp_avg.view(p.shape);
            v = run.exp_avg_sq.view(p.shape);
          }
        all.push_back(testing::gather_global(p, p.value, *world));
        all.push_back(testing::gather_global(p, m, *world));
        all.push_back(testing::gather_global(p, v, *world));
      }
      return all;
    };
    const std::vector<testing::GlobalTensor> before = state();
    // Expert g goes to expert g + 1's owner: every rank keeps its number of experts.
    const std::vector<int> first = parallel.model->fssdp()->owners();
    std::vector<int> owners(first.begin() + 1, first.end());
    owners.push_back(first.front());
    int moving = 0;
    for (size_t g = 0; g < owners.size(); ++g) moving += owners[g] != first[g];
    ASSERT_GT(moving, 0);
    EXPECT_EQ(reshard_experts(*parallel.model, parallel.store, *parallel.optimizer, owners, stream),
              moving);
    EXPECT_EQ(parallel.model->fssdp()->owners(), owners);
    const std::vector<testing::GlobalTensor> after = state();
    ASSERT_EQ(before.size(), after.size());
    for (size_t i = 0; i < before.size(); ++i) {
      EXPECT_EQ(after[i].uncovered, 0) << i;
      EXPECT_TRUE(testing::all_close(after[i].values, before[i].values, 0, 0)) << i;
    }
  }
}

// Expert copies this rank holds in the plans of every MoE layer's last forward, summed over ranks.
int copies_over_ranks(const FssdpCoordinator& fssdp, Communicator& world) {
  int copies = 0;
  for (int l = 0; l < fssdp.layers(); ++l)
    copies += static_cast<int>(fssdp.plan(l).replicas_on(fssdp.rank()).size());
  Tensor total = Tensor::from_vector<int64_t>({1}, {copies});
  Stream stream;
  world.all_reduce(total, ReduceOp::sum, stream);
  return static_cast<int>(total.data<int64_t>()[0]);
}

// One batch's gradient: some expert is held beyond its owner, and the gradient (the copies'
// summed onto the owners) equals the single rank's.
void expect_copies_give_the_single_rank_gradient(Replica& parallel, Replica& reference,
                                                 Communicator& world, Stream& stream) {
  const StepStats ref = reference.gradients(stream);
  const StepStats par = parallel.gradients(stream);
  EXPECT_GT(copies_over_ranks(*parallel.model->fssdp(), world), 0) << "no expert was copied";
  EXPECT_NEAR(par.lm_loss, ref.lm_loss, 1e-5 * ref.lm_loss);
  EXPECT_EQ(par.loads, ref.loads);
  expect_same_parameters(parallel, reference, world, true, 1e-6, 1e-3);
}

// With FSSDP the experts are copied to other ranks (calibrated: by each forward from its own
// routing; predicted: once a step has recorded loads, by the next one); the gradient of a batch
// still equals the single rank's (the copies' gradients summed onto the owners).
TEST_F(ParallelLayouts, FssdpCopiesGiveTheSingleRankGradient) {
  for (const Layout& layout : layouts) {
    if (!layout.fssdp) continue;
    for (const bool calibrate : {true, false}) {
      SCOPED_TRACE(layout.name() + (calibrate ? " calibrated" : " predicted"));
      ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
      Config c = layout_run(dataset_for(*world), layout);
      c.fssdp.calibrate = calibrate;
      Replica reference(single_rank(c), {}, false),
          parallel(c, grid.groups(layout.expert_tp), false);
      Stream stream;
      if (!calibrate) {
        reference.step(0, stream);
        parallel.step(0, stream);
      }
      expect_copies_give_the_single_rank_gradient(parallel, reference, *world, stream);
    }
  }
}

// Without calibration nothing is copied before a step has recorded loads; with it, the first
// forward already plans its copies from its own routing.
TEST_F(ParallelLayouts, FssdpCalibrationCopiesFromTheFirstForward) {
  for (const Layout& layout : layouts) {
    if (!layout.fssdp) continue;
    ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
    for (const bool calibrate : {true, false}) {
      SCOPED_TRACE(layout.name() + (calibrate ? " calibrated" : " predicted"));
      Config c = layout_run(dataset_for(*world), layout);
      c.fssdp.calibrate = calibrate;
      Replica parallel(c, grid.groups(layout.expert_tp), false);
      Stream stream;
      parallel.gradients(stream);
      const int copies = copies_over_ranks(*parallel.model->fssdp(), *world);
      if (calibrate) {
        EXPECT_GT(copies, 0);
      } else {
        EXPECT_EQ(copies, 0);
      }
    }
  }
}

// The copies a step logs are the mean over its forwards' plans: calibrated plans differ between
// micro-batches (one forward here sends every token to expert 0, the other none anywhere).
TEST_F(ParallelLayouts, FssdpLogsTheMeanCopiesOfTheStepsForwards) {
  for (const Layout& layout : layouts) {
    if (!layout.fssdp) continue;
    SCOPED_TRACE(layout.name());
    ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
    Replica parallel(layout_run(dataset_for(*world), layout), grid.groups(layout.expert_tp), false);
    FssdpCoordinator& fssdp = *parallel.model->fssdp();
    const int experts = parallel.config.moe.num_experts;
    std::vector<int64_t> skewed(experts, 0), none(experts, 0);
    skewed[0] = 1000;
    for (int step = 0; step < 2; ++step) {  // the second step starts the mean afresh
      fssdp.begin_step();
      EXPECT_EQ(fssdp.copies_per_forward(0), static_cast<double>(fssdp.plan(0).copies()));
      const double copies = static_cast<double>(fssdp.plan_forward(0, skewed).copies());
      EXPECT_GT(copies, 0);
      EXPECT_EQ(fssdp.plan_forward(0, none).copies(), 0);
      EXPECT_EQ(fssdp.copies_per_forward(0), copies / 2);
    }
  }
}

// LLEP on the groups of the FSSDP layouts with tp 1 (experts over ep): skewed routing and no
// threshold, so every forward moves tokens and experts to the least-loaded ranks; a batch's
// gradient and the loss curve of ten steps equal the single rank's.
TEST_F(ParallelLayouts, LeastLoadedExpertParallelismGivesTheSingleRankGradient) {
  for (const Layout& layout : layouts) {
    Config c = layout_run(dataset_for(*world), layout);
    if (!layout.fssdp || layout.tp != 1 || c.moe.num_experts % layout.ep != 0) continue;
    SCOPED_TRACE(layout.name() + " llep");
    c.parallel.experts = ExpertPlacement::llep;
    c.moe.router_skew = 4;
    c.llep = {.capacity_factor = 1, .min_tokens = 1, .imbalance_threshold = 0, .slots = 1};
    ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
    Replica reference(single_rank(c), {}, false), parallel(c, grid.groups(false), layout.zero);
    Stream stream;
    expect_copies_give_the_single_rank_gradient(parallel, reference, *world, stream);
    for (int64_t step = 0; step < 10; ++step) {
      const StepStats r = reference.step(step, stream);
      const StepStats p = parallel.step(step, stream);
      ASSERT_NEAR(p.lm_loss, r.lm_loss, 1e-4 * r.lm_loss) << "step " << step;
    }
  }
}

// ZeRO-1 keeps moments only for this rank's slice of each parameter group: dense parameters
// sharded over dp, experts over edp; the slices cover every local element once. Under FSSDP each
// expert is whole on its owner already, and its moments stay whole.
TEST_F(ParallelLayouts, ZeroOneKeepsAShareOfTheMoments) {
  for (const Layout& layout : layouts) {
    if (!layout.zero) continue;
    SCOPED_TRACE(layout.name());
    ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
    const Config c = layout_run(dataset_for(*world), layout);
    Replica sharded(c, grid.groups(layout.expert_tp), true);
    const int64_t dense = sharded.store.range(ParamGroup::dense).size(),
                  experts = sharded.store.range(ParamGroup::expert).size();
    const int64_t expert_shards = layout.fssdp ? 1 : grid.edp_size();
    EXPECT_LE(sharded.optimizer->moment_elements(),
              (dense + grid.dp_size() - 1) / grid.dp_size() +
                  (experts + expert_shards - 1) / expert_shards);
    Tensor owned = Tensor::from_vector<int64_t>({1}, {sharded.optimizer->moment_elements()});
    Stream stream;
    grid.dp_group().all_reduce(owned, ReduceOp::sum, stream);
    // Over dp the dense slices add up to the dense part once and the expert slices to the experts
    // once per EP rank (ep different expert sets), under FSSDP every rank's owned experts whole.
    EXPECT_EQ(owned.data<int64_t>()[0],
              dense + experts * (layout.fssdp ? grid.dp_size() : grid.ep_size()));
  }
}

// Duplicate token dropping: ranks {0,2} and {1,3} each run tp1 dp2 ep2 (a split world) on the
// same data as the matching data-parallel rank of tp2 dp2 ep2 on all four ranks.
TEST_F(ParallelLayouts, DuplicateTokenDroppingSplitsTheAllToAllOverTp) {
  if (world->size() != 4) GTEST_SKIP() << "needs exactly 4 ranks";
  const Config c = layout_run(dataset_for(*world), {});
  ProcessGrid with_tp(*world, 2, 2, 2);
  std::unique_ptr<Communicator> half = world->split(world->rank() % 2, world->rank());
  ProcessGrid without_tp(*half, 1, 2, 2);
  ASSERT_EQ(with_tp.dp_rank(), without_tp.dp_rank());
  Replica a(c, with_tp.groups(false), false), b(c, without_tp.groups(false), false);
  Stream stream;
  const StepStats sa = a.gradients(stream);
  const StepStats sb = b.gradients(stream);
  EXPECT_NEAR(sa.lm_loss, sb.lm_loss, 1e-5 * sb.lm_loss);
  const int64_t bytes_tp = with_tp.ep_group().volume()[Collective::all_to_all],
                bytes_alone = without_tp.ep_group().volume()[Collective::all_to_all];
  ASSERT_GT(bytes_alone, 0);
  EXPECT_LT(bytes_tp, 0.6 * static_cast<double>(bytes_alone));
  Tensor shares = Tensor::from_vector<int64_t>({1}, {bytes_tp});
  with_tp.tp_group().all_reduce(shares, ReduceOp::sum, stream);
  EXPECT_EQ(shares.data<int64_t>()[0], bytes_alone)
      << "the TP ranks' shares must add up to the rows one rank sends without TP";
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

Config in_bf16(Config c) {
  c.train.precision = Precision::bf16;
  return c;
}

TEST_F(ParallelLayouts, Bf16GradientOfOneGlobalBatchEqualsTheSingleRankBf16Gradient) {
  for (const Layout& layout : layouts) {
    SCOPED_TRACE(layout.name());
    ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
    const Config c = in_bf16(layout_run(dataset_for(*world), layout));
    Config f32 = single_rank(c);
    f32.train.precision = Precision::f32;
    Replica reference(single_rank(c), {}, false), parallel(c, grid.groups(layout.expert_tp), false),
        full(f32, {}, false);
    Stream stream;
    const StepStats ref = reference.gradients(stream);
    const StepStats par = parallel.gradients(stream);
    full.gradients(stream);
    if (layout.tp == 1) {
      EXPECT_NEAR(par.lm_loss, ref.lm_loss, 1e-5 * ref.lm_loss);
      EXPECT_NEAR(par.aux_loss, ref.aux_loss, 1e-5 * ref.aux_loss);
      EXPECT_EQ(par.loads, ref.loads);
    } else {
      EXPECT_NEAR(par.lm_loss, ref.lm_loss, 2e-5 * ref.lm_loss);
    }
    const double bound = layout.tp == 1 ? 0.1 : 2.0;
    for (Parameter& p : parallel.store.parameters()) {
      const testing::GlobalTensor global = testing::gather_global(p, p.grad, *world);
      EXPECT_EQ(global.uncovered, 0) << p.name;
      EXPECT_EQ(global.mismatched, 0) << p.name << ": copies on different ranks differ";
      const Tensor& ref_grad = reference.store.find(p.name).grad;
      const double bf16_effect = testing::distance(ref_grad, full.store.find(p.name).grad);
      EXPECT_LE(testing::distance(global.values, ref_grad), bound * bf16_effect + 1e-6) << p.name;
    }
  }
}

TEST_F(ParallelLayouts, Bf16ThirtyStepsFollowTheSingleRankBf16LossCurve) {
  for (const Layout& layout : layouts) {
    SCOPED_TRACE(layout.name());
    ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
    const Config c = in_bf16(layout_run(dataset_for(*world), layout));
    Replica reference(single_rank(c), {}, false),
        parallel(c, grid.groups(layout.expert_tp), layout.zero);
    Stream stream;
    for (int64_t step = 0; step < 30; ++step) {
      const StepStats ref = reference.step(step, stream);
      const StepStats par = parallel.step(step, stream);
      ASSERT_NEAR(par.lm_loss, ref.lm_loss, 2e-3 * ref.lm_loss) << "step " << step;
      ASSERT_NEAR(par.grad_norm, ref.grad_norm, 0.1 * ref.grad_norm) << "step " << step;
    }
  }
}

}  // namespace
}  // namespace moe
