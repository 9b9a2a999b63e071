// Data parallelism trains the same model as one rank: for one global batch the averaged gradient
// equals the single-rank gradient, and over 30 optimizer steps on real text the loss curve and the
// final parameters match. Every rank computes the single-rank reference itself (same seed, the
// whole global batch, no communication) and compares it with what the data-parallel run gives.
//
// Tolerance: fp32, and the two runs sum the same terms in a different order (per-rank partial sums,
// then the all-reduce), so results differ by a few float roundings: relative 1e-4 with an absolute
// floor of 1e-7 for gradients, which a missing 1/dp, a missing rank or a wrong slice exceeds by
// far. The aux loss is per sequence, the layout-independent form (global-batch balancing comes
// later).
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "parallel/communicator.h"
#include "tests/support/text_dataset.h"
#include "tests/support/tiny_run.h"
#include "tests/support/tolerance.h"
#include "trainer/train_step.h"

namespace moe {
namespace {

constexpr int64_t kGlobalBatch = 8;

Config layout_independent_run(const std::string& dataset, const std::string& aux_loss_type) {
  Config c = testing::tiny_run(dataset);
  c.moe.aux_loss_type = aux_loss_type;
  c.moe.expert_bias = true;  // its update must see the global loads, or ranks drift apart
  c.data.val_fraction = 0;
  return c;
}

// A model, its optimizer and its loader for data-parallel rank dp_rank of dp (dp 1: the reference).
struct Replica {
  Config config;
  ParameterStore store{DType::f32};
  std::unique_ptr<Model> model;
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<TokenLoader> loader;

  // shard_group: ZeRO-1 over this group (null: plain AdamW).
  Replica(const Config& c, int dp_rank, int dp, Communicator* shard_group = nullptr) : config(c) {
    config.train.micro_batch_size = static_cast<int>(kGlobalBatch / dp);
    model = std::make_unique<Model>(config, store);
    store.allocate(1);
    optimizer = std::make_unique<AdamW>(store, config.train, shard_group);
    loader = make_token_loader(config.data, dp_rank, dp);
  }
  StepStats gradients(Communicator* dp_group, Stream& stream) {
    return accumulate_gradients(*model, store, *loader, config.train, dp_group, true, 0, stream);
  }
  StepStats step(Communicator* dp_group, int64_t step, Stream& stream) {
    return train_step(*model, *optimizer, store, *loader, config.train, dp_group, 3e-3, step,
                      stream);
  }
};

std::string dataset_for(const Communicator& world) {
  return testing::write_text_dataset(
      "/usr/share/common-licenses/GPL-3",
      ::testing::TempDir() + "moe_data_parallel_rank" + std::to_string(world.rank()) + "/gpl");
}

class DataParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(DataParallel, AveragedGradientEqualsTheSingleRankGradient) {
  std::unique_ptr<Communicator> world = mpi_world_communicator();
  const Config c = layout_independent_run(dataset_for(*world), GetParam());
  Replica reference(c, 0, 1), parallel(c, world->rank(), world->size());
  Stream stream;
  const StepStats ref = reference.gradients(nullptr, stream);
  const StepStats par = parallel.gradients(world.get(), stream);
  EXPECT_NEAR(par.lm_loss, ref.lm_loss, 1e-5 * ref.lm_loss);
  EXPECT_NEAR(par.aux_loss, ref.aux_loss, 1e-5 * ref.aux_loss);
  EXPECT_NEAR(par.z_loss, ref.z_loss, 1e-5 * ref.z_loss);
  EXPECT_EQ(par.loads, ref.loads);
  EXPECT_EQ(par.tokens, ref.tokens);
  EXPECT_TRUE(testing::all_close(parallel.store.grads(), reference.store.grads(), 1e-7, 1e-4));
}

TEST_P(DataParallel, ThirtyStepsFollowTheSingleRankLossCurve) {
  std::unique_ptr<Communicator> world = mpi_world_communicator();
  const Config c = layout_independent_run(dataset_for(*world), GetParam());
  Replica reference(c, 0, 1), parallel(c, world->rank(), world->size());
  Stream stream;
  for (int64_t step = 0; step < 30; ++step) {
    const StepStats ref = reference.step(nullptr, step, stream);
    const StepStats par = parallel.step(world.get(), step, stream);
    ASSERT_NEAR(par.lm_loss, ref.lm_loss, 1e-4 * ref.lm_loss) << "step " << step;
  }
  EXPECT_TRUE(testing::all_close(parallel.store.values(), reference.store.values(), 1e-5, 1e-3));
  EXPECT_TRUE(testing::all_close(parallel.store.buffers().front().value,
                                 reference.store.buffers().front().value, 0, 0))
      << "the expert bias moved differently";
}

// ZeRO-1 (moments sharded, gradients reduce-scattered, parameters all-gathered) gives the numbers
// of plain data parallelism, with each rank holding only its share of the moments.
TEST(ZeroOne, MatchesPlainDataParallelWithAShareOfTheMoments) {
  std::unique_ptr<Communicator> world = mpi_world_communicator();
  const Config c = layout_independent_run(dataset_for(*world), "global_batch");
  Replica plain(c, world->rank(), world->size()),
      sharded(c, world->rank(), world->size(), world.get());
  const int64_t params = plain.store.numel(), ranks = world->size();
  EXPECT_EQ(plain.optimizer->moment_elements(), params);
  EXPECT_LE(sharded.optimizer->moment_elements(), (params + ranks - 1) / ranks);
  Tensor owned = Tensor::from_vector<int64_t>({1}, {sharded.optimizer->moment_elements()});
  Stream stream;
  world->all_reduce(owned, ReduceOp::sum, stream);
  EXPECT_EQ(owned.data<int64_t>()[0], params) << "the shards must cover every parameter once";
  for (int64_t step = 0; step < 10; ++step) {
    const StepStats a = plain.step(world.get(), step, stream);
    const StepStats b = sharded.step(world.get(), step, stream);
    ASSERT_NEAR(b.lm_loss, a.lm_loss, 1e-5 * a.lm_loss) << "step " << step;
    ASSERT_NEAR(b.grad_norm, a.grad_norm, 1e-4 * a.grad_norm) << "step " << step;
  }
  EXPECT_TRUE(testing::all_close(sharded.store.values(), plain.store.values(), 1e-6, 1e-4));
}

INSTANTIATE_TEST_SUITE_P(AuxLoss, DataParallel, ::testing::Values("sequence", "global_batch"));

}  // namespace
}  // namespace moe
