// Validation scores the same tokens in any layout (issue 22): with the same global batch
// (micro_batch_size x grad_accum x dp = 16 sequences), the validation loss of the same model on the
// same data is the single-rank loss on 1, 2 and 4 ranks, under data, tensor and expert
// parallelism, and also when the set is smaller than eval_batches global batches (uneven shares,
// padded forwards), and so are the expert loads (integers: exactly equal). Before, every rank
// scored eval_batches x micro_batch_size sequences, so the loss followed micro_batch_size: the
// 1-rank case with micro_batch_size 4 already differs.
//
// Tolerance: relative 1e-7. The tokens are the same and each one's loss is computed the same way;
// only the order of the sums differs (per-rank sums added over dp, per-batch means times their
// token counts, and under TP the fp32 partial logits all-reduced): up to 1e-10 observed, the rest
// is margin for other CPUs' rounding. The old scoring (eval_batches x micro_batch_size sequences
// on every rank) is off by 3e-4 to 5e-4 here, and one dropped or repeated sequence of the ~32 by
// about 1e-5.
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "parallel/process_grid.h"
#include "tests/support/replica.h"
#include "trainer/evaluation.h"

namespace moe {
namespace {

using testing::Layout;
using testing::Replica;

constexpr int kGlobalSequences = 16;

struct EvalLayout {
  Layout layout;
  int grad_accum = 1;  // micro_batch_size = kGlobalSequences / (grad_accum x dp)
};

std::vector<EvalLayout> layouts_for(int world) {
  switch (world) {
    case 1:
      return {{{1, 1, 1}, 1}, {{1, 1, 1}, 4}};
    case 2:
      return {{{1, 2, 1}, 1}, {{1, 2, 2}, 2}, {{2, 1, 1}, 1}};
    case 4:
      return {{{1, 4, 1}, 1}, {{1, 4, 4}, 2}, {{2, 2, 2}, 1}};
    default:
      return {};
  }
}

Config eval_run(const Communicator& world, int eval_batches) {
  Config c = testing::layout_run(testing::rank_dataset(world, "eval_layouts"), Layout{});
  c.data.val_fraction = 0.1;
  c.train.eval_batches = eval_batches;
  return c;
}

// The validation losses of `replica` with its config's batch layout, over its dp group.
ValidationLosses losses_of(Replica& replica, int grad_accum) {
  TrainConfig& train = replica.config.train;
  const int dp = group_size(replica.groups.dp);
  train.grad_accum = grad_accum;
  train.micro_batch_size = kGlobalSequences / (grad_accum * dp);
  Stream stream;
  return evaluate_all(
      *replica.model, *replica.loader,
      {validation_sequences(train, dp), train.micro_batch_size, replica.groups.dp, true}, stream);
}

TEST(EvalLayouts, RankSharesSplitTheSequencesContiguouslyAndEvenly) {
  for (const int ranks : {1, 2, 3, 4, 7})
    for (const int64_t sequences : {0, 1, 5, 16, 33}) {
      int64_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        const SequenceRange share = rank_share(sequences, r, ranks);
        EXPECT_EQ(share.begin, next) << sequences << " over " << ranks << ", rank " << r;
        EXPECT_LE(share.end - share.begin, (sequences + ranks - 1) / ranks);
        EXPECT_GE(share.end - share.begin, sequences / ranks);
        next = share.end;
      }
      EXPECT_EQ(next, sequences) << sequences << " over " << ranks;
    }
}

TEST(EvalLayouts, ValidationLossIsTheSingleRankLossInEveryLayout) {
  const std::unique_ptr<Communicator> world = mpi_world_communicator();
  const std::vector<EvalLayout> layouts = layouts_for(world->size());
  ASSERT_FALSE(layouts.empty()) << "no layouts for " << world->size() << " ranks";
  // 2 global batches of the ~100-sequence set, and more than the whole set (uneven shares).
  for (const int eval_batches : {2, 100}) {
    const Config c = eval_run(*world, eval_batches);
    Replica reference(c, {}, false);
    const ValidationLosses expected = losses_of(reference, 1);
    ASSERT_EQ(expected.per_set.size(), 1u);
    ASSERT_GT(expected.tokens[0], 0);
    int moe_layers = 0;
    for (const std::vector<int64_t>& layer : expected.loads[0]) {
      if (layer.empty()) continue;  // a dense block
      ++moe_layers;
      EXPECT_EQ(std::accumulate(layer.begin(), layer.end(), int64_t{0}),
                c.moe.top_k * expected.tokens[0]);
    }
    EXPECT_GT(moe_layers, 0);
    for (const EvalLayout& e : layouts) {
      SCOPED_TRACE(e.layout.name() + " grad_accum " + std::to_string(e.grad_accum) +
                   ", eval_batches " + std::to_string(eval_batches));
      ProcessGrid grid(*world, e.layout.tp, e.layout.dp, e.layout.ep);
      Replica parallel(c, grid.groups(false), false);
      const ValidationLosses got = losses_of(parallel, e.grad_accum);
      EXPECT_NEAR(got.mean, expected.mean, 1e-7 * expected.mean);
      EXPECT_EQ(got.tokens, expected.tokens);
      EXPECT_EQ(got.loads, expected.loads);
    }
  }
}

}  // namespace
}  // namespace moe
