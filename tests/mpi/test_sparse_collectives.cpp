// FSSDP's sparse collectives under mpirun (2, 4 and 8 ranks), on random plans that every rank
// draws alike from one seed:
// - after sparse_all_gather every holder's chunk equals its owner's bit for bit;
// - after sparse_reduce_scatter the owner holds the sum of every holder's gradient: equal to a
//   dense all-reduce of the same gradients (small integers, so any order is exact), including
//   replicas that got no tokens and send zeros; with arbitrary floats, bit for bit the sum in
//   the documented order (own gradient, then replicas by rank), every time;
// - the bytes counted are exactly the plan's chunks that move;
// - plans computed on every rank from all-reduced loads are identical.
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "parallel/communicator.h"
#include "parallel/fssdp/load_history.h"
#include "parallel/fssdp/materialization.h"
#include "parallel/fssdp/resharding.h"
#include "parallel/fssdp/sparse_collectives.h"

namespace moe {
namespace {

class SparseCollectives : public ::testing::Test {
 protected:
  std::unique_ptr<Communicator> comm = mpi_world_communicator();
  const int rank = comm->rank();
  const int size = comm->size();
  Stream stream;
};

// A plan drawn from `seed` (the same on every rank): random owners, each other rank a holder with
// probability 2/5.
ExpertPlan random_plan(uint32_t seed, int experts, int ranks) {
  std::mt19937 rng(seed);
  std::vector<int> owner(experts);
  for (int& o : owner) o = static_cast<int>(rng() % ranks);
  ExpertPlan plan = owners_only(owner);
  for (int e = 0; e < experts; ++e) {
    plan.holders[e].clear();
    for (int r = 0; r < ranks; ++r)
      if (r == owner[e] || rng() % 5 < 2) plan.holders[e].push_back(r);
  }
  return plan;
}

// An expert's chunk: two tensors (as an expert's several weight matrices), 1 + 5e and 2 elements.
int64_t chunk_size(int expert) { return 1 + 5 * expert + 2; }

float& at(ExpertChunk& chunk, int64_t i) {
  const int64_t first = chunk[0].numel();
  return i < first ? chunk[0].data<float>()[i] : chunk[1].data<float>()[i - first];
}

// A float made of arbitrary bits (finite), a function of (a, b, c).
float arbitrary(int a, int b, int64_t c) {
  std::mt19937 rng(static_cast<uint32_t>(a * 1000003 + b * 7919 + c));
  return std::uniform_real_distribution<float>(-3.0f, 3.0f)(rng);
}

// Chunks where `rank` holds an expert, filled by value(expert, i); empty elsewhere.
template <typename Value>
std::vector<ExpertChunk> chunks_for(const ExpertPlan& plan, int rank, Value value) {
  std::vector<ExpertChunk> chunks(plan.experts());
  for (int e = 0; e < plan.experts(); ++e) {
    if (!plan.holds(e, rank)) continue;
    chunks[e] = {Tensor::empty({chunk_size(e) - 2}, DType::f32), Tensor::empty({2}, DType::f32)};
    for (int64_t i = 0; i < chunk_size(e); ++i) at(chunks[e], i) = value(e, i);
  }
  return chunks;
}

TEST_F(SparseCollectives, AllGatherGivesEveryHolderTheOwnersChunkBitForBit) {
  for (uint32_t trial = 0; trial < 20; ++trial) {
    const ExpertPlan plan = random_plan(trial, 12, size);
    std::vector<ExpertChunk> chunks = chunks_for(plan, rank, [&](int e, int64_t i) {
      return plan.owner[e] == rank ? arbitrary(trial, e, i) : std::nanf("");
    });
    comm->reset_volume();
    sparse_all_gather(plan, chunks, comm.get(), stream);
    int64_t sent = 0;
    for (int e = 0; e < plan.experts(); ++e) {
      if (plan.owner[e] == rank)
        sent += static_cast<int64_t>(plan.holders[e].size() - 1) * chunk_size(e) * 4;
      if (!plan.holds(e, rank)) continue;
      for (int64_t i = 0; i < chunk_size(e); ++i) {
        const float want = arbitrary(trial, e, i), got = at(chunks[e], i);
        EXPECT_EQ(std::memcmp(&want, &got, 4), 0) << "trial " << trial << " expert " << e;
      }
    }
    EXPECT_EQ(comm->volume()[Collective::send_recv], sent) << "trial " << trial;
  }
}

TEST_F(SparseCollectives, ReduceScatterEqualsADenseAllReduceIncludingIdleReplicas) {
  for (uint32_t trial = 0; trial < 20; ++trial) {
    const ExpertPlan plan = random_plan(100 + trial, 12, size);
    // Small integers (exact in any order); a third of the replicas had no tokens.
    const auto gradient = [&](int r, int e, int64_t i) -> float {
      if (r != plan.owner[e] && (r + e + static_cast<int>(trial)) % 3 == 0) return 0.0f;
      return static_cast<float>((r * 7 + e * 3 + i) % 11 - 5);
    };
    std::vector<ExpertChunk> grads =
        chunks_for(plan, rank, [&](int e, int64_t i) { return gradient(rank, e, i); });
    int64_t total = 0;
    std::vector<int64_t> offset(plan.experts());
    for (int e = 0; e < plan.experts(); ++e)
      offset[e] = std::exchange(total, total + chunk_size(e));
    Tensor dense = Tensor::zeros({total}, DType::f32);
    for (int e = 0; e < plan.experts(); ++e)
      if (plan.holds(e, rank))
        for (int64_t i = 0; i < chunk_size(e); ++i)
          dense.data<float>()[offset[e] + i] = gradient(rank, e, i);
    comm->all_reduce(dense, ReduceOp::sum, stream);

    comm->reset_volume();
    sparse_reduce_scatter(plan, grads, comm.get(), stream);
    int64_t sent = 0;
    for (int e = 0; e < plan.experts(); ++e) {
      if (!plan.holds(e, rank)) continue;
      const bool owner = plan.owner[e] == rank;
      if (!owner) sent += chunk_size(e) * 4;
      for (int64_t i = 0; i < chunk_size(e); ++i)
        EXPECT_EQ(at(grads[e], i),
                  owner ? dense.data<float>()[offset[e] + i] : gradient(rank, e, i))
            << "trial " << trial << " expert " << e << (owner ? " (owner)" : " (replica)");
    }
    EXPECT_EQ(comm->volume()[Collective::send_recv], sent) << "trial " << trial;
  }
}

TEST_F(SparseCollectives, ReduceScatterAddsInRankOrderEveryTime) {
  const ExpertPlan plan = random_plan(7, 16, size);
  const auto gradient = [](int r, int e, int64_t i) { return arbitrary(r, e, i); };
  for (int run = 0; run < 3; ++run) {
    std::vector<ExpertChunk> grads =
        chunks_for(plan, rank, [&](int e, int64_t i) { return gradient(rank, e, i); });
    sparse_reduce_scatter(plan, grads, comm.get(), stream);
    for (int e = 0; e < plan.experts(); ++e) {
      if (plan.owner[e] != rank) continue;
      for (int64_t i = 0; i < chunk_size(e); ++i) {
        float want = gradient(rank, e, i);
        for (int holder : plan.holders[e])
          if (holder != rank) want += gradient(holder, e, i);
        const float got = at(grads[e], i);
        EXPECT_EQ(std::memcmp(&want, &got, 4), 0) << "run " << run << " expert " << e;
      }
    }
  }
}

TEST_F(SparseCollectives, PlansFromAllReducedLoadsAreTheSameOnEveryRank) {
  const int layers = 3, experts = 8;
  const Topology topology{size, size >= 4 ? 2 : 1};
  std::mt19937 rng(1234 + rank);  // every rank routes different tokens
  LoadHistory history(layers * experts, 5);
  for (int step = 0; step < 7; ++step) {
    Tensor load = Tensor::zeros({layers * experts}, DType::f64);
    for (int64_t g = 0; g < layers * experts; ++g)
      load.data<double>()[g] = static_cast<double>(rng() % (g % experts == 0 ? 400 : 50));
    comm->all_reduce(load, ReduceOp::sum, stream);
    history.record(std::vector<double>(load.data<double>(), load.data<double>() + load.numel()));
  }
  const std::vector<double> predicted = history.predict();
  std::vector<std::vector<double>> per_layer(layers);
  for (int l = 0; l < layers; ++l)
    per_layer[l].assign(predicted.begin() + l * experts, predicted.begin() + (l + 1) * experts);
  const std::vector<int> owner = shard_experts(per_layer, 1, topology);
  std::vector<int64_t> fingerprint(owner.begin(), owner.end());
  for (int l = 0; l < layers; ++l) {
    const std::vector<int> layer_owner(owner.begin() + l * experts,
                                       owner.begin() + (l + 1) * experts);
    const ExpertPlan plan = plan_materialization(layer_owner, per_layer[l], {2, 3}, topology);
    for (const std::vector<int>& ranks : plan.holders) {
      fingerprint.push_back(-1);
      fingerprint.insert(fingerprint.end(), ranks.begin(), ranks.end());
    }
  }
  const auto n = static_cast<int64_t>(fingerprint.size());
  Tensor mine = Tensor::from_vector<int64_t>({n}, fingerprint);
  Tensor all = Tensor::zeros({n * size}, DType::i64);
  comm->all_gather(mine, all, stream);
  for (int r = 0; r < size; ++r)
    EXPECT_EQ(std::memcmp(all.data<int64_t>() + r * n, fingerprint.data(), n * 8), 0)
        << "rank " << r << "'s plan differs from rank " << rank << "'s";
}

}  // namespace
}  // namespace moe
