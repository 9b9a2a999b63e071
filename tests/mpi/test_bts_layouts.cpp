// A BTS model in any layout equals one rank: rank 0 saves a seed and two experts; each layout
// (ranks per replica sharing the three decoders x data-parallel replicas) trains on its slice of a
// fixed global batch, and after the trainer's gradient sync every rank's stitch gradients and the
// replica-averaged loss equal one rank's on the whole batch (fp32: rel 1e-4). The only
// all-reduced bytes are the stitch gradients: the frozen decoders' are never communicated.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "config/yaml_io.h"
#include "kernels/ops.h"
#include "parallel/process_grid.h"
#include "tests/support/random_parameters.h"
#include "tests/support/tolerance.h"
#include "tests/support/upcycle_models.h"
#include "trainer/gradient_sync.h"
#include "upcycling/bts_model.h"

namespace moe {
namespace {

constexpr int64_t kRows = 12, kSeqLen = 8;

Config decoder_config() {
  Config c = testing::small_dense_config(16, 2);
  c.model.n_layers = 4;
  c.moe.first_k_dense = 4;
  return c;
}

// Rows [begin, begin + count) of the fixed global batch.
Tensor batch_rows(int64_t begin, int64_t count) {
  std::vector<int32_t> ids;
  for (int64_t n = begin * kSeqLen; n < (begin + count) * kSeqLen; ++n)
    ids.push_back(static_cast<int32_t>((n * 7 + n / 5) % 16));
  return Tensor::from_vector<int32_t>({count, kSeqLen}, ids);
}

struct Result {
  double loss = 0;
  Tensor grads;
};

// One forward and backward of this rank's share of the batch, then the trainer's gradient sync.
Result step(const Config& config, const ParallelGroups& groups, int64_t stitch_bytes) {
  ParameterStore store(DType::f32);
  BtsModel model(config, store, groups);
  store.allocate(0);
  testing::randomize_parameters(store, 20, -0.5, 0.5);  // the same on every rank
  Stream stream;
  const int dp = group_size(groups.dp), rows = static_cast<int>(kRows / dp);
  const Tensor tokens = batch_rows(int64_t{group_rank(groups.dp)} * rows, rows);
  reset_volume(groups);
  store.zero_grads(stream);
  Tensor loss =
      Tensor::from_vector<double>({1}, {model.forward(tokens, tokens, true, stream).lm_loss});
  model.backward(1.0, stream);
  sum_partial_gradients(store, groups, stream);
  average_gradients(store, groups, stream);
  const int64_t all_reduced = total_volume(groups)[Collective::all_reduce];
  const int64_t expected =
      (group_size(groups.tp) > 1 ? stitch_bytes : 0) + (dp > 1 ? stitch_bytes : 0);
  EXPECT_EQ(all_reduced, expected) << "bytes all-reduced: the stitch gradients only";
  all_reduce_sum(groups.dp, loss, stream);
  return {loss.data<double>()[0] / dp, store.grads().clone()};
}

TEST(BtsLayouts, EveryLayoutEqualsOneRank) {
  std::unique_ptr<Communicator> world = mpi_world_communicator();
  const std::string root = ::testing::TempDir() + "moe_bts_layouts";
  const Config decoder = decoder_config();
  if (world->rank() == 0) {
    std::filesystem::remove_all(root);
    uint64_t seed = 1;
    for (const char* name : {"seed", "code", "bible"}) {
      ParameterStore store(DType::f32);
      Model model(decoder.model, decoder.moe, store);
      store.allocate(seed++);
      CheckpointMeta meta;
      meta.config_yaml = to_yaml(decoder);
      save_checkpoint(root + "/" + name, {&store, false, {}}, meta, {});
    }
  }
  world->barrier();
  Config config = decoder;
  config.model.kind = ModelKind::bts;
  config.bts.seed = root + "/seed";
  config.bts.experts = {root + "/code", root + "/bible"};
  config.bts.stitch_every = 1;

  ParameterStore sizes(DType::f32);
  { BtsModel counted(config, sizes, {}); }
  const int64_t stitch_bytes = sizes.numel() * 4;
  const Result one = step(config, {}, stitch_bytes);

  const int n = world->size();
  for (int ranks_per_replica = 1; ranks_per_replica <= 3; ++ranks_per_replica) {
    if (n % ranks_per_replica != 0 || kRows % (n / ranks_per_replica) != 0) continue;
    SCOPED_TRACE(std::to_string(ranks_per_replica) + " ranks per replica x " +
                 std::to_string(n / ranks_per_replica) + " replicas");
    ProcessGrid grid(*world, ranks_per_replica, n / ranks_per_replica, 1);
    const Result r = step(config, grid.groups(false), stitch_bytes);
    EXPECT_NEAR(r.loss, one.loss, 1e-5 * one.loss);
    EXPECT_TRUE(testing::all_close(r.grads, one.grads, 1e-7, 1e-4));
  }
  world->barrier();
}

}  // namespace
}  // namespace moe
