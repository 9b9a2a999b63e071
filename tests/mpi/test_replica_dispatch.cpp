// The FSSDP dispatch (TokenDispatcher::plan_replicas) under mpirun (1, 2 and 4 ranks), on random
// expert plans and random routing:
// - every row reaches a holder of its expert, by the routing rule (route_to_replicas), and a
//   rank's local experts are exactly the ones it holds;
// - dispatch -> per-expert work -> combine gives every slot its own token's row transformed by its
//   own expert (each expert multiplies by its own factor), so no row is lost, duplicated or sent
//   to the wrong expert;
// - the backward pair (combine_backward, dispatch_backward) is the adjoint: <combine(a), b> equals
//   <a, combine_backward(b)> and likewise for dispatch;
// - with 2 TP ranks (EP over the rest) each TP rank's share reaches the holders, by the even split
//   and by balanced quotas: without expert_tp each TP rank runs whole experts on its share; with
//   it the TP ranks of an EP rank run their slices of the held experts on all the rows any of them
//   received, and combine sums the slices' parts; the backward pair is the adjoint in both.
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "layers/token_dispatcher.h"
#include "parallel/fssdp/replica_routing.h"
#include "parallel/process_grid.h"

namespace moe {
namespace {

constexpr int kExperts = 6, kTopK = 2;
constexpr int64_t kTokens = 9, kWidth = 3;

class ReplicaDispatch : public ::testing::Test {
 protected:
  std::unique_ptr<Communicator> world = mpi_world_communicator();
  const int rank = world->rank(), ranks = world->size();
  Stream stream;

  ExpertPlan random_plan(uint32_t seed) const { return random_plan(seed, ranks); }
  // Holders over `over` ranks (the EP group), the same on every rank that asks.
  static ExpertPlan random_plan(uint32_t seed, int over) {
    std::mt19937 rng(seed);
    ExpertPlan plan;
    for (int e = 0; e < kExperts; ++e) {
      plan.owner.push_back(static_cast<int>(rng() % over));
      plan.holders.emplace_back();
      for (int r = 0; r < over; ++r)
        if (r == plan.owner[e] || rng() % 3 == 0) plan.holders[e].push_back(r);
    }
    return plan;
  }
};

// Sorted slots and per-expert counts of random top-2 routing; ids[n * kTopK + j] is token n's
// j-th expert.
struct Routing {
  std::vector<int32_t> ids;
  Tensor slots, counts;
};

Routing random_routing(std::mt19937& rng, Stream& stream) {
  Routing r{std::vector<int32_t>(kTokens * kTopK), Tensor::empty({kTokens * kTopK}, DType::i32),
            Tensor::empty({kExperts}, DType::i64)};
  for (int64_t n = 0; n < kTokens; ++n) {
    const int first = static_cast<int>(rng() % kExperts);
    r.ids[n * kTopK] = first;
    r.ids[n * kTopK + 1] = (first + 1 + static_cast<int>(rng() % (kExperts - 1))) % kExperts;
  }
  ops::moe_sort_by_expert(Tensor::from_vector<int32_t>({kTokens, kTopK}, r.ids), kExperts, r.slots,
                          r.counts, stream);
  return r;
}

// Token n of rank `source` (its EP rank): the row (source, n, 1).
std::vector<float> tagged_rows(int source) {
  std::vector<float> xs;
  for (int64_t n = 0; n < kTokens; ++n)
    xs.insert(xs.end(), {static_cast<float>(source), static_cast<float>(n), 1.0f});
  return xs;
}

// x[n] = (rank, n, 1) scaled; expert e multiplies by (e + 2).
TEST_F(ReplicaDispatch, EveryRowReachesAHolderOfItsExpertAndComesBackToItsSlot) {
  for (uint32_t trial = 0; trial < 10; ++trial) {
    const ExpertPlan experts = random_plan(trial);
    const Topology topology{ranks, ranks >= 4 ? 2 : 1};
    ParallelGroups groups;
    groups.ep = groups.dp = groups.world = world.get();
    const TokenDispatcher dispatcher(kExperts, groups, true);
    std::mt19937 rng(1000 * trial + rank);
    const Routing r = random_routing(rng, stream);
    const std::vector<int32_t>& ids = r.ids;
    const std::vector<float> xs = tagged_rows(rank);
    const Tensor x = Tensor::from_vector<float>({kTokens, kWidth}, xs);

    const DispatchPlan plan =
        dispatcher.plan_replicas(r.slots, dispatcher.gather_counts(r.counts.to_vector<int64_t>()),
                                 experts, topology, stream);
    std::vector<int> held;
    for (int e = 0; e < kExperts; ++e)
      if (experts.holds(e, rank)) held.push_back(e);
    EXPECT_EQ(plan.local_experts, held) << "trial " << trial;
    Tensor rows = dispatcher.dispatch(x, kTopK, plan, stream);
    ASSERT_EQ(rows.dim(0),
              std::accumulate(plan.expert_counts.begin(), plan.expert_counts.end(), int64_t{0}));
    // Each arrived row came from a rank that routes it here (source rank is the row's column 0).
    int64_t at = 0;
    for (size_t j = 0; j < held.size(); ++j)
      for (int64_t i = 0; i < plan.expert_counts[j]; ++i, ++at) {
        const int source = static_cast<int>(rows.data<float>()[at * kWidth]);
        bool same_node = false;
        for (int h : experts.holders[held[j]])
          same_node |= topology.node_of(h) == topology.node_of(source);
        EXPECT_TRUE(experts.holds(held[j], source) ? source == rank
                    : same_node ? topology.node_of(rank) == topology.node_of(source)
                                : true)
            << "trial " << trial << ": a row of rank " << source << " for expert " << held[j];
        for (int64_t c = 0; c < kWidth; ++c) rows.data<float>()[at * kWidth + c] *= held[j] + 2;
      }
    Tensor y_slots = Tensor::empty({kTokens * kTopK, kWidth}, DType::f32);
    dispatcher.combine(rows, plan, y_slots, stream);
    for (int64_t s = 0; s < kTokens * kTopK; ++s)
      for (int64_t c = 0; c < kWidth; ++c)
        EXPECT_EQ(y_slots.data<float>()[s * kWidth + c],
                  xs[(s / kTopK) * kWidth + c] * (ids[s] + 2))
            << "trial " << trial << " slot " << s;
  }
}

double dot(const Tensor& a, const Tensor& b) {
  double sum = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    sum += static_cast<double>(a.data<float>()[i]) * b.data<float>()[i];
  return sum;
}

Tensor random_tensor(Shape shape, std::mt19937& rng) {
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (float& f : v) f = static_cast<float>(static_cast<int>(rng() % 7) - 3);
  return Tensor::from_vector<float>(shape, v);
}

TEST_F(ReplicaDispatch, TheBackwardPairIsTheAdjoint) {
  const ExpertPlan experts = random_plan(99);
  const Topology topology{ranks, 1};
  ParallelGroups groups;
  groups.ep = groups.dp = groups.world = world.get();
  const TokenDispatcher dispatcher(kExperts, groups, true);
  std::mt19937 rng(7 + rank);
  std::vector<int32_t> ids(kTokens * kTopK);
  for (int64_t s = 0; s < kTokens * kTopK; s += kTopK) {
    ids[s] = static_cast<int>(rng() % kExperts);
    ids[s + 1] = (ids[s] + 1) % kExperts;
  }
  Tensor slots = Tensor::empty({kTokens * kTopK}, DType::i32);
  Tensor counts = Tensor::empty({kExperts}, DType::i64);
  ops::moe_sort_by_expert(Tensor::from_vector<int32_t>({kTokens, kTopK}, ids), kExperts, slots,
                          counts, stream);
  const DispatchPlan plan = dispatcher.plan_replicas(
      slots, dispatcher.gather_counts(counts.to_vector<int64_t>()), experts, topology, stream);
  const int64_t local =
      std::accumulate(plan.expert_counts.begin(), plan.expert_counts.end(), int64_t{0});
  const Tensor x = random_tensor({kTokens, kWidth}, rng);
  const Tensor drows = random_tensor({local, kWidth}, rng);
  const Tensor rows = dispatcher.dispatch(x, kTopK, plan, stream);
  Tensor dx = Tensor::empty({kTokens, kWidth}, DType::f32);
  dispatcher.dispatch_backward(drows, kTopK, plan, dx, stream);
  Tensor sums = Tensor::from_vector<double>({2}, {dot(rows, drows), dot(x, dx)});
  const Tensor out = random_tensor({local, kWidth}, rng);
  const Tensor dslots = random_tensor({kTokens * kTopK, kWidth}, rng);
  Tensor slots_out = Tensor::empty({kTokens * kTopK, kWidth}, DType::f32);
  dispatcher.combine(out, plan, slots_out, stream);
  const Tensor dout = dispatcher.combine_backward(dslots, plan, stream);
  Tensor more = Tensor::from_vector<double>({2}, {dot(slots_out, dslots), dot(out, dout)});
  world->all_reduce(sums, ReduceOp::sum, stream);
  world->all_reduce(more, ReduceOp::sum, stream);
  EXPECT_EQ(sums.data<double>()[0], sums.data<double>()[1]) << "dispatch";
  EXPECT_EQ(more.data<double>()[0], more.data<double>()[1]) << "combine";
}

// Tokens and their routing are replicated over TP (seeded by the EP rank), as in the model; each
// TP rank routes its share of them, by the even split or (odd trials) by balanced quotas. Without
// expert_tp each TP rank runs whole experts on the rows of its share: it scales the rows of held
// expert e by (e + 2). With expert_tp the TP ranks of an EP rank run their slices on the rows of
// every share: TP rank t scales by (e + 2)(t + 1), its slice's part of the output, and combine sums
// the parts, so every slot comes back scaled by (e + 2) tp (tp + 1) / 2.
TEST_F(ReplicaDispatch, WithTpEveryShareReachesTheHoldersAndComesBack) {
  const int tp = ranks >= 2 ? 2 : 1;
  ProcessGrid grid(*world, tp, ranks / tp, ranks / tp);
  const int ep = grid.ep_size(), me = grid.ep_rank(), t = grid.tp_rank();
  for (const bool expert_tp : {false, true})
    for (uint32_t trial = 0; trial < 10; ++trial) {
      SCOPED_TRACE((expert_tp ? "expert_tp, trial " : "trial ") + std::to_string(trial));
      const TokenDispatcher dispatcher(kExperts, grid.groups(expert_tp), true);
      ExpertPlan experts = random_plan(trial, ep);
      experts.balance = trial % 2 == 1;
      std::mt19937 rng(1000 * trial + me);
      const Routing r = random_routing(rng, stream);
      const std::vector<float> xs = tagged_rows(me);
      const Tensor x = Tensor::from_vector<float>({kTokens, kWidth}, xs);
      const DispatchPlan plan =
          dispatcher.plan_replicas(r.slots, dispatcher.gather_counts(r.counts.to_vector<int64_t>()),
                                   experts, Topology{ep, 1}, stream);
      Tensor rows = dispatcher.dispatch(x, kTopK, plan, stream);
      // Over all ranks the holders run each expert's rows once per TP share, and with expert_tp
      // every TP rank runs every share.
      Tensor rows_per_expert = Tensor::zeros({kExperts}, DType::i64);
      for (size_t j = 0; j < plan.local_experts.size(); ++j) {
        EXPECT_TRUE(experts.holds(plan.local_experts[j], me));
        rows_per_expert.data<int64_t>()[plan.local_experts[j]] = plan.expert_counts[j];
      }
      Tensor routed = Tensor::from_vector<int64_t>({kExperts}, r.counts.to_vector<int64_t>());
      world->all_reduce(rows_per_expert, ReduceOp::sum, stream);
      grid.ep_group().all_reduce(routed, ReduceOp::sum, stream);
      for (int e = 0; e < kExperts; ++e)
        EXPECT_EQ(rows_per_expert.data<int64_t>()[e],
                  routed.data<int64_t>()[e] * (expert_tp ? tp : 1))
            << "expert " << e;
      int64_t at = 0;
      for (size_t j = 0; j < plan.local_experts.size(); ++j)
        for (int64_t i = 0; i < plan.expert_counts[j]; ++i, ++at)
          for (int64_t c = 0; c < kWidth; ++c)
            rows.data<float>()[at * kWidth + c] *=
                static_cast<float>((plan.local_experts[j] + 2) * (expert_tp ? t + 1 : 1));
      ASSERT_EQ(at, rows.dim(0));
      Tensor y_slots = Tensor::empty({kTokens * kTopK, kWidth}, DType::f32);
      dispatcher.combine(rows, plan, y_slots, stream);
      const int parts = expert_tp ? tp * (tp + 1) / 2 : 1;
      for (int64_t s = 0; s < kTokens * kTopK; ++s)
        for (int64_t c = 0; c < kWidth; ++c)
          EXPECT_EQ(y_slots.data<float>()[s * kWidth + c],
                    xs[(s / kTopK) * kWidth + c] * static_cast<float>((r.ids[s] + 2) * parts))
              << "slot " << s;
    }
}

// The adjoint identities with TP, with and without expert_tp. Inputs and outputs replicated over
// TP (x, the combined slots) count once per EP rank; the experts' rows and outputs, which differ
// per TP rank, count on every rank.
TEST_F(ReplicaDispatch, WithTpTheBackwardPairIsTheAdjoint) {
  const int tp = ranks >= 2 ? 2 : 1;
  ProcessGrid grid(*world, tp, ranks / tp, ranks / tp);
  const int ep = grid.ep_size(), me = grid.ep_rank();
  for (const bool expert_tp : {false, true}) {
    SCOPED_TRACE(expert_tp ? "expert_tp" : "whole experts");
    const TokenDispatcher dispatcher(kExperts, grid.groups(expert_tp), true);
    ExpertPlan experts = random_plan(99, ep);
    experts.balance = true;
    std::mt19937 shared(7 + me), own(70 + rank);
    const Routing r = random_routing(shared, stream);
    const DispatchPlan plan =
        dispatcher.plan_replicas(r.slots, dispatcher.gather_counts(r.counts.to_vector<int64_t>()),
                                 experts, Topology{ep, 1}, stream);
    const int64_t local =
        std::accumulate(plan.expert_counts.begin(), plan.expert_counts.end(), int64_t{0});
    const Tensor x = random_tensor({kTokens, kWidth}, shared);
    const Tensor dslots = random_tensor({kTokens * kTopK, kWidth}, shared);
    const Tensor drows = random_tensor({local, kWidth}, own);
    const Tensor out = random_tensor({local, kWidth}, own);
    const Tensor rows = dispatcher.dispatch(x, kTopK, plan, stream);
    Tensor dx = Tensor::empty({kTokens, kWidth}, DType::f32);
    dispatcher.dispatch_backward(drows, kTopK, plan, dx, stream);
    Tensor slots_out = Tensor::empty({kTokens * kTopK, kWidth}, DType::f32);
    dispatcher.combine(out, plan, slots_out, stream);
    const Tensor dout = dispatcher.combine_backward(dslots, plan, stream);
    Tensor sums = Tensor::from_vector<double>(
        {4}, {dot(rows, drows), dot(x, dx) / tp, dot(slots_out, dslots) / tp, dot(out, dout)});
    world->all_reduce(sums, ReduceOp::sum, stream);
    EXPECT_EQ(sums.data<double>()[0], sums.data<double>()[1]) << "dispatch";
    EXPECT_EQ(sums.data<double>()[2], sums.data<double>()[3]) << "combine";
  }
}

}  // namespace
}  // namespace moe
