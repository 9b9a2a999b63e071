// The MoE and loss ops on CUDA against the CPU: cross-entropy (f32 and bf16 logits, sharded vocab,
// ignored rows, masked -inf logits), router top-k forward and backward in every scoring mode (ids
// exactly, deliberate ties of scores and of score + bias), the router-loss reductions, the expert
// sort (stable, exact), expert capacity under both drop policies (ties, in place), the four row
// movers and combine (f32 and bf16, with dropped slots), and AdamW. Every assigned output is
// pre-filled with NaN or a garbage integer, so an element left unwritten fails.
//
// Both backends see the same rounded inputs. Integer outputs (ids, slots, counts) and pure row
// copies must match exactly. Tolerances, in multiples of the dtype's epsilon:
// - Router, router losses and AdamW compute in double on both backends and round once to f32, so
//   they may differ by one f32 rounding: 2 eps; 4 for AdamW, whose second step starts from the
//   first step's (possibly one ulp apart) results.
// - Cross-entropy lse: the GPU sums exp in f32 (each exp within 2 ulp, an online rescale per new
//   running max, a 256-way tree), well under 16 eps relative to the sum; lse = max + log(sum), so
//   that is also its absolute error, and the check scales by 1 + |lse|. dlogits: one f32 exp of
//   (x - lse), whose absolute error is at most |x - lse| p eps <= eps / e, plus two roundings: 4.
// - Sums of k slot rows (permute backward, combine): both backends add in the same order with the
//   same f32 roundings (no fused multiply-add), so f32 is exact and bf16 rounds that f32 once: 1.
// - combine's dprobs is a width-long f32 dot product on the GPU (double on the CPU): 4 sqrt(width).
// - bf16 outputs are computed in f32 from the same values and rounded once: 2 bf16 eps.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/cuda_compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using ops::DropPolicy;
using ops::RouterScore;
using ops::RouterTopkOptions;
using testing::all_close;
using testing::matches_cpu;
using testing::random_tensor;
using testing::rounded;
using testing::to_device;
using testing::to_host;

using CudaMoeOps = testing::CudaTest;

const DType kDtypes[] = {DType::f32, DType::bf16};

Tensor filled_device(Shape shape, DType dtype, double value, Stream& gpu) {
  Tensor t = Tensor::empty(shape, dtype, Device::cuda(0));
  ops::fill(t, value, gpu);
  return t;
}

// A device tensor filled with NaN: any element an op leaves unwritten fails the comparison.
Tensor nan_device(Shape shape, DType dtype, Stream& gpu) {
  return filled_device(shape, dtype, std::numeric_limits<double>::quiet_NaN(), gpu);
}

// Integer outputs must match exactly.
::testing::AssertionResult same_integers(const Tensor& device, const Tensor& expected) {
  return all_close(to_host(device), expected, 0, 0);
}

// i32 values uniform in [0, bound), host.
Tensor random_ints(Shape shape, int64_t bound, uint64_t seed) {
  const Tensor u = random_tensor(shape, DType::f64, seed, 0.0, static_cast<double>(bound));
  std::vector<int32_t> values(static_cast<size_t>(u.numel()));
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<int32_t>(std::min<double>(std::floor(u.data<double>()[i]), bound - 1));
  return Tensor::from_vector<int32_t>(shape, values);
}

// --- cross-entropy --------------------------------------------------------------------------

constexpr int kIgnore = -100;

struct CrossEntropyCase {
  int64_t rows, vocab, vocab_start;
};

// A full shard, a vocabulary narrower than the block, and a shard in the middle of the vocabulary
// (targets below and above it).
const CrossEntropyCase kCrossEntropyCases[] = {{37, 1031, 0}, {37, 50, 0}, {37, 1031, 700}};

struct CrossEntropyInputs {
  Tensor logits, targets;  // host: f32 rounded to the dtype, i32
};

// Every 5th row ignored; row 4 targets the shard's first class and has its last 10 logits masked
// to -inf.
CrossEntropyInputs cross_entropy_inputs(const CrossEntropyCase& c, DType dtype) {
  Tensor logits = random_tensor({c.rows, c.vocab}, DType::f32, 31, -8.0, 8.0);
  for (int64_t v = c.vocab - 10; v < c.vocab; ++v)
    logits.data<float>()[4 * c.vocab + v] = -std::numeric_limits<float>::infinity();
  Tensor targets = random_ints({c.rows}, c.vocab_start + c.vocab + 300, 32);
  for (int64_t n = 0; n < c.rows; n += 5) targets.data<int32_t>()[n] = kIgnore;
  targets.data<int32_t>()[4] = static_cast<int32_t>(c.vocab_start);
  return {rounded(logits, dtype), targets};
}

std::string describe(const CrossEntropyCase& c, DType dtype) {
  return std::string(dtype_name(dtype)) + " rows " + std::to_string(c.rows) + " vocab " +
         std::to_string(c.vocab) + " vocab_start " + std::to_string(c.vocab_start);
}

TEST_F(CudaMoeOps, CrossEntropyForwardMatchesCpu) {
  for (DType dtype : kDtypes)
    for (const CrossEntropyCase& c : kCrossEntropyCases) {
      SCOPED_TRACE(describe(c, dtype));
      const CrossEntropyInputs in = cross_entropy_inputs(c, dtype);
      Tensor target_logits = Tensor::empty({c.rows}, DType::f32);
      Tensor lse = Tensor::empty({c.rows}, DType::f32);
      ops::cross_entropy_forward(in.logits, in.targets, kIgnore, c.vocab_start, target_logits, lse,
                                 host);
      Tensor got_target_logits = nan_device({c.rows}, DType::f32, gpu);
      Tensor got_lse = nan_device({c.rows}, DType::f32, gpu);
      ops::cross_entropy_forward(to_device(in.logits, dtype), to_device(in.targets, DType::i32),
                                 kIgnore, c.vocab_start, got_target_logits, got_lse, gpu);
      EXPECT_TRUE(matches_cpu("ce target_logits", got_target_logits, target_logits, DType::f32, 0));
      EXPECT_TRUE(matches_cpu("ce lse", got_lse, lse, DType::f32, 16));
    }
}

TEST_F(CudaMoeOps, CrossEntropyBackwardMatchesCpu) {
  for (DType dtype : kDtypes)
    for (const CrossEntropyCase& c : kCrossEntropyCases) {
      SCOPED_TRACE(describe(c, dtype));
      const CrossEntropyInputs in = cross_entropy_inputs(c, dtype);
      Tensor target_logits = Tensor::empty({c.rows}, DType::f32);
      Tensor lse = Tensor::empty({c.rows}, DType::f32);
      ops::cross_entropy_forward(in.logits, in.targets, kIgnore, c.vocab_start, target_logits, lse,
                                 host);
      Tensor dlogits = Tensor::empty(in.logits.shape(), DType::f32);
      ops::cross_entropy_backward(in.logits, in.targets, lse, kIgnore, c.vocab_start, 0.5f, dlogits,
                                  host);
      Tensor got = nan_device(in.logits.shape(), dtype, gpu);
      ops::cross_entropy_backward(to_device(in.logits, dtype), to_device(in.targets, DType::i32),
                                  to_device(lse, DType::f32), kIgnore, c.vocab_start, 0.5f, got,
                                  gpu);
      EXPECT_TRUE(matches_cpu("ce dlogits", got, dlogits, dtype, dtype == DType::f32 ? 4.0 : 2.0));
    }
}

// --- router ---------------------------------------------------------------------------------

struct RouterCase {
  int64_t tokens;
  int experts, k;
};

// Experts fewer than, not a multiple of, and exactly the warp's 8 per lane; k up to 16.
const RouterCase kRouterCases[] = {
    {37, 6, 2}, {37, 33, 3}, {37, 64, 8}, {37, 256, 16}, {5, 256, 1}};

struct Routed {
  Tensor probs, expert_ids, scores;
};

Routed route_on_cpu(const Tensor& logits, const Tensor& bias, const RouterTopkOptions& options) {
  Stream host;
  const int64_t tokens = logits.dim(0);
  Routed out{Tensor::empty({tokens, options.k}, DType::f32),
             Tensor::empty({tokens, options.k}, DType::i32),
             Tensor::empty(logits.shape(), DType::f32)};
  ops::router_topk_forward(logits, bias, options, out.probs, out.expert_ids, out.scores, host);
  return out;
}

void expect_routing_matches(const Tensor& logits, const Tensor& bias,
                            const RouterTopkOptions& options, Stream& gpu) {
  const Routed expected = route_on_cpu(logits, bias, options);
  const int64_t tokens = logits.dim(0);
  Routed got{nan_device({tokens, options.k}, DType::f32, gpu),
             filled_device({tokens, options.k}, DType::i32, -7, gpu),
             nan_device(logits.shape(), DType::f32, gpu)};
  ops::router_topk_forward(to_device(logits, DType::f32),
                           bias.defined() ? to_device(bias, DType::f32) : Tensor(), options,
                           got.probs, got.expert_ids, got.scores, gpu);
  EXPECT_TRUE(same_integers(got.expert_ids, expected.expert_ids));
  EXPECT_TRUE(matches_cpu("router probs", got.probs, expected.probs, DType::f32, 2));
  EXPECT_TRUE(matches_cpu("router scores", got.scores, expected.scores, DType::f32, 2));
}

std::string describe(const RouterCase& c, const RouterTopkOptions& o, bool bias) {
  return "tokens " + std::to_string(c.tokens) + " E " + std::to_string(c.experts) + " k " +
         std::to_string(o.k) + (o.score == RouterScore::softmax ? " softmax" : " sigmoid") +
         (o.renormalize ? " renormalized" : "") + " scaling " + std::to_string(o.scaling) +
         (bias ? " bias" : "");
}

// Random logits in [-4, 4) and biases of the size of the scores: no two keys of a row are near a
// tie, so the ids must agree exactly.
TEST_F(CudaMoeOps, RouterForwardMatchesCpuInEveryMode) {
  for (const RouterCase& c : kRouterCases)
    for (RouterScore score : {RouterScore::softmax, RouterScore::sigmoid})
      for (bool renormalize : {true, false})
        for (float scaling : {1.0f, 2.5f})
          for (bool with_bias : {false, true}) {
            const RouterTopkOptions options{c.k, score, renormalize, scaling};
            SCOPED_TRACE(describe(c, options, with_bias));
            const Tensor logits = random_tensor({c.tokens, c.experts}, DType::f32, 41, -4.0, 4.0);
            const double bias_size = score == RouterScore::softmax ? 1.0 / c.experts : 0.1;
            const Tensor bias =
                with_bias ? random_tensor({c.experts}, DType::f32, 42, -bias_size, bias_size)
                          : Tensor();
            expect_routing_matches(logits, bias, options, gpu);
          }
}

// Group-limited choice (DeepSeek-V3): groups spread over lanes (E 256 in 8 or 32 groups, lanes
// hold experts 32 apart) and within one lane's reach (E 12 in 4 groups), with a bias.
TEST_F(CudaMoeOps, GroupLimitedRoutingMatchesCpu) {
  struct GroupCase {
    int64_t experts;
    int k, groups, kept;
  };
  for (const GroupCase& c : {GroupCase{256, 8, 8, 4}, GroupCase{256, 4, 32, 3},
                             GroupCase{12, 3, 4, 2}, GroupCase{64, 2, 64 / 2, 1}})
    for (RouterScore score : {RouterScore::softmax, RouterScore::sigmoid}) {
      const RouterTopkOptions options{c.k, score, true, 2.5f, c.groups, c.kept};
      SCOPED_TRACE("E " + std::to_string(c.experts) + " groups " + std::to_string(c.groups) +
                   " kept " + std::to_string(c.kept));
      const Tensor logits = random_tensor({37, c.experts}, DType::f32, 43, -4.0, 4.0);
      const double bias_size = score == RouterScore::softmax ? 1.0 / c.experts : 0.1;
      expect_routing_matches(
          logits, random_tensor({c.experts}, DType::f32, 44, -bias_size, bias_size), options, gpu);
    }
}

// Exact ties resolve to the lower expert id, within a lane (3 and 35) and across lanes.
TEST_F(CudaMoeOps, RouterTiesGoToTheLowerExpertId) {
  const int experts = 40;
  // Softmax: logit 2 for experts 3, 10, 35 and 1 for 7, 20, 39 -> 3, 10, 35, 7, 20.
  std::vector<float> values(experts, 0.0f);
  for (int e : {3, 10, 35}) values[e] = 2.0f;
  for (int e : {7, 20, 39}) values[e] = 1.0f;
  const Tensor logits = Tensor::from_vector<float>({1, experts}, values);
  const RouterTopkOptions softmax{5, RouterScore::softmax, true, 1.0f};
  expect_routing_matches(logits, Tensor(), softmax, gpu);
  EXPECT_EQ(route_on_cpu(logits, Tensor(), softmax).expert_ids.to_vector<int32_t>(),
            (std::vector<int32_t>{3, 10, 35, 7, 20}));

  // Sigmoid of equal logits: every score is 0.5, so the keys tie through the bias: 0.75 for 1, 5,
  // 37, then 0.5 for the rest -> 1, 5, 37, 0.
  std::vector<float> bias_values(experts, 0.0f);
  for (int e : {37, 5, 1}) bias_values[e] = 0.25f;
  const Tensor zeros = Tensor::from_vector<float>({1, experts}, std::vector<float>(experts, 0.0f));
  const Tensor bias = Tensor::from_vector<float>({experts}, bias_values);
  const RouterTopkOptions sigmoid{4, RouterScore::sigmoid, false, 1.0f};
  expect_routing_matches(zeros, bias, sigmoid, gpu);
  EXPECT_EQ(route_on_cpu(zeros, bias, sigmoid).expert_ids.to_vector<int32_t>(),
            (std::vector<int32_t>{1, 5, 37, 0}));
}

TEST_F(CudaMoeOps, RouterBackwardMatchesCpuInEveryMode) {
  for (const RouterCase& c : kRouterCases)
    for (RouterScore score : {RouterScore::softmax, RouterScore::sigmoid})
      for (bool renormalize : {true, false})
        for (bool with_dscores : {false, true}) {
          const RouterTopkOptions options{c.k, score, renormalize, 2.5f};
          SCOPED_TRACE(describe(c, options, false) + (with_dscores ? " dscores" : ""));
          const Tensor logits = random_tensor({c.tokens, c.experts}, DType::f32, 43, -4.0, 4.0);
          const Routed forward = route_on_cpu(logits, Tensor(), options);
          const Tensor dprobs = random_tensor({c.tokens, c.k}, DType::f32, 44);
          const Tensor dscores =
              with_dscores ? random_tensor(logits.shape(), DType::f32, 45) : Tensor();
          Tensor dlogits = Tensor::empty(logits.shape(), DType::f32);
          ops::router_topk_backward(dprobs, dscores, forward.expert_ids, forward.scores, options,
                                    dlogits, host);
          Tensor got = nan_device(logits.shape(), DType::f32, gpu);
          ops::router_topk_backward(to_device(dprobs, DType::f32),
                                    with_dscores ? to_device(dscores, DType::f32) : Tensor(),
                                    to_device(forward.expert_ids, DType::i32),
                                    to_device(forward.scores, DType::f32), options, got, gpu);
          EXPECT_TRUE(matches_cpu("router dlogits", got, dlogits, DType::f32, 2));
        }
}

// --- router losses --------------------------------------------------------------------------

TEST_F(CudaMoeOps, ExpertCountsMatchCpu) {
  const int64_t tokens = 96, k = 4, experts = 19;
  const Tensor ids = random_ints({tokens, k}, experts, 51);
  for (int64_t group : {1, 8, 96})
    for (int choices : {1, 3, 4}) {
      SCOPED_TRACE("group " + std::to_string(group) + " choices " + std::to_string(choices));
      Tensor counts = Tensor::empty({tokens / group, experts}, DType::i64);
      ops::moe_expert_counts(ids, group, choices, counts, host);
      Tensor got = filled_device(counts.shape(), DType::i64, 123, gpu);
      ops::moe_expert_counts(to_device(ids, DType::i32), group, choices, got, gpu);
      EXPECT_TRUE(same_integers(got, counts));
    }
}

TEST_F(CudaMoeOps, GroupSumAndBroadcastMatchCpu) {
  const int64_t rows = 96, width = 37;
  const Tensor x = random_tensor({rows, width}, DType::f32, 52);
  for (int64_t group : {1, 8, 96}) {
    SCOPED_TRACE("group " + std::to_string(group));
    const int64_t groups = rows / group;
    Tensor sums = Tensor::empty({groups, width}, DType::f32);
    ops::group_sum(x, group, sums, host);
    Tensor got_sums = nan_device(sums.shape(), DType::f32, gpu);
    ops::group_sum(to_device(x, DType::f32), group, got_sums, gpu);
    EXPECT_TRUE(matches_cpu("group_sum", got_sums, sums, DType::f32, 2));

    const Tensor w = random_tensor({groups, width}, DType::f32, 53);
    Tensor spread = Tensor::empty({rows, width}, DType::f32);
    ops::group_broadcast(w, group, spread, host);
    Tensor got_spread = nan_device(spread.shape(), DType::f32, gpu);
    ops::group_broadcast(to_device(w, DType::f32), group, got_spread, gpu);
    EXPECT_TRUE(matches_cpu("group_broadcast", got_spread, spread, DType::f32, 0));
  }
}

// The backward accumulates into a non-zero dx.
TEST_F(CudaMoeOps, NormalizeRowsAndItsBackwardMatchCpu) {
  for (const int64_t width : {int64_t{4}, int64_t{33}, int64_t{256}}) {
    SCOPED_TRACE("width " + std::to_string(width));
    const Tensor x = random_tensor({37, width}, DType::f32, 91, 0.01, 1.0);
    const Tensor dout = random_tensor({37, width}, DType::f32, 92);
    Tensor expected = Tensor::empty(x.shape(), DType::f32), expected_dx = expected.clone();
    ops::normalize_rows(x, expected, host);
    ops::normalize_rows_backward(x, dout, expected_dx, host);
    Tensor got = nan_device(x.shape(), DType::f32, gpu),
           dx = nan_device(x.shape(), DType::f32, gpu);
    const Tensor device_x = to_device(x, DType::f32);
    ops::normalize_rows(device_x, got, gpu);
    ops::normalize_rows_backward(device_x, to_device(dout, DType::f32), dx, gpu);
    EXPECT_TRUE(matches_cpu("normalize_rows", got, expected, DType::f32, 2));
    EXPECT_TRUE(matches_cpu("normalize_rows_backward", dx, expected_dx, DType::f32, 4));
  }
}

TEST_F(CudaMoeOps, LogsumexpRowsMatchesCpu) {
  for (int64_t width : {64, 1000}) {
    SCOPED_TRACE("width " + std::to_string(width));
    const int64_t rows = 37;
    const Tensor x = random_tensor({rows, width}, DType::f32, 54, -10.0, 10.0);
    Tensor lse = Tensor::empty({rows}, DType::f32);
    ops::logsumexp_rows(x, lse, host);
    Tensor got_lse = nan_device({rows}, DType::f32, gpu);
    ops::logsumexp_rows(to_device(x, DType::f32), got_lse, gpu);
    EXPECT_TRUE(matches_cpu("logsumexp_rows", got_lse, lse, DType::f32, 2));

    const Tensor dlse = random_tensor({rows}, DType::f32, 55);
    const Tensor dx0 = random_tensor({rows, width}, DType::f32, 56);
    Tensor dx = dx0.clone();
    ops::logsumexp_rows_backward(x, lse, dlse, dx, host);
    Tensor got_dx = to_device(dx0, DType::f32);
    ops::logsumexp_rows_backward(to_device(x, DType::f32), to_device(lse, DType::f32),
                                 to_device(dlse, DType::f32), got_dx, gpu);
    EXPECT_TRUE(matches_cpu("logsumexp_rows dx", got_dx, dx, DType::f32, 2));
  }
}

// --- sort by expert and capacity ------------------------------------------------------------

struct Sorted {
  Tensor slots, counts;  // host i32[N*k], i64[E]
};

Sorted sort_on_cpu(const Tensor& ids, int experts) {
  Stream host;
  Sorted out{Tensor::empty({ids.numel()}, DType::i32), Tensor::empty({experts}, DType::i64)};
  ops::moe_sort_by_expert(ids, experts, out.slots, out.counts, host);
  return out;
}

// E = 255 and 256 straddle the radix sort's one-pass limit (keys in [0, E]); E = 1 has one key
// bit; no tokens at all.
TEST_F(CudaMoeOps, SortByExpertMatchesCpuExactly) {
  struct Case {
    int64_t tokens, k;
    int experts;
  };
  for (const Case& c : {Case{1000, 4, 64}, Case{5000, 8, 256}, Case{300, 2, 255}, Case{77, 3, 1},
                        Case{200, 2, 3}, Case{0, 2, 8}}) {
    SCOPED_TRACE("tokens " + std::to_string(c.tokens) + " k " + std::to_string(c.k) + " E " +
                 std::to_string(c.experts));
    const Tensor ids = random_ints({c.tokens, c.k}, c.experts, 61);
    const Sorted expected = sort_on_cpu(ids, c.experts);
    Tensor slots = filled_device({ids.numel()}, DType::i32, -7, gpu);
    Tensor counts = filled_device({c.experts}, DType::i64, 123, gpu);
    ops::moe_sort_by_expert(to_device(ids, DType::i32), c.experts, slots, counts, gpu);
    EXPECT_TRUE(same_integers(slots, expected.slots));
    EXPECT_TRUE(same_integers(counts, expected.counts));
  }
}

struct Kept {
  int64_t rows;
  Tensor slots, counts;  // host: kept_slots[0, rows), kept_counts
};

Kept capacity_on_cpu(const Sorted& sorted, const Tensor& probs, int64_t capacity,
                     DropPolicy policy) {
  Stream host;
  Tensor slots = Tensor::empty({sorted.slots.numel()}, DType::i32);
  Tensor counts = Tensor::empty(sorted.counts.shape(), DType::i64);
  const int64_t rows = ops::moe_apply_capacity(sorted.slots, sorted.counts, probs, capacity, policy,
                                               slots, counts, host);
  return {rows, slots.narrow(0, rows), counts};
}

// kept_slots either a separate tensor pre-filled with garbage or sorted_slots itself.
Kept capacity_on_gpu(const Sorted& sorted, const Tensor& probs, int64_t capacity, DropPolicy policy,
                     bool in_place, Stream& gpu) {
  const Tensor slots = to_device(sorted.slots, DType::i32);
  Tensor kept = in_place ? slots : filled_device({sorted.slots.numel()}, DType::i32, -7, gpu);
  Tensor counts = filled_device(sorted.counts.shape(), DType::i64, 123, gpu);
  const int64_t rows = ops::moe_apply_capacity(slots, sorted.counts, to_device(probs, DType::f32),
                                               capacity, policy, kept, counts, gpu);
  return {rows, to_host(kept).narrow(0, rows), to_host(counts)};
}

// Random routing (groups of ~75 slots, and of ~1500, more than one block's chunk), with
// continuous probs and with probs on a 1/8 grid (many exact ties, broken by the lower slot, and
// -0 tying with +0), capacities from none to all.
TEST_F(CudaMoeOps, ApplyCapacityMatchesCpuExactly) {
  struct Case {
    int64_t tokens;
    int k, experts;
  };
  for (const Case& c : {Case{600, 2, 16}, Case{3000, 2, 4}})
    for (bool ties : {false, true}) {
      const Tensor ids = random_ints({c.tokens, c.k}, c.experts, 62);
      const Sorted sorted = sort_on_cpu(ids, c.experts);
      Tensor probs = random_tensor({c.tokens, c.k}, DType::f32, 63, 0.0, 1.0);
      if (ties)
        for (int64_t i = 0; i < probs.numel(); ++i) {
          float& p = probs.data<float>()[i];
          p = std::floor(p * 8) / 8;
          if (p == 0 && i % 2) p = -0.0f;
        }
      const int64_t mean = c.tokens * c.k / c.experts;
      for (int64_t capacity : {int64_t{0}, int64_t{1}, mean / 2, mean, 10 * mean})
        for (DropPolicy policy : {DropPolicy::probs, DropPolicy::position})
          for (bool in_place : {false, true}) {
            SCOPED_TRACE("tokens " + std::to_string(c.tokens) + (ties ? " ties" : "") +
                         " capacity " + std::to_string(capacity) +
                         (policy == DropPolicy::probs ? " probs" : " position") +
                         (in_place ? " in place" : ""));
            const Kept expected = capacity_on_cpu(sorted, probs, capacity, policy);
            const Kept got = capacity_on_gpu(sorted, probs, capacity, policy, in_place, gpu);
            EXPECT_EQ(got.rows, expected.rows);
            if (got.rows != expected.rows) continue;
            EXPECT_TRUE(all_close(got.slots, expected.slots, 0, 0));
            EXPECT_TRUE(all_close(got.counts, expected.counts, 0, 0));
          }
    }
}

// --- permute, unpermute, combine ------------------------------------------------------------

struct PermuteCase {
  int64_t tokens, width;
  int k;
  bool dropped;  // slots listed after a capacity that drops some
};

const PermuteCase kPermuteCases[] = {
    {37, 1029, 3, false}, {37, 1029, 3, true}, {50, 40, 2, true}, {1, 300, 1, false}};

// The slots in expert order, all of them or those a capacity keeps.
Tensor listed_slots(const PermuteCase& c) {
  const int experts = 5;
  const Sorted sorted = sort_on_cpu(random_ints({c.tokens, c.k}, experts, 71), experts);
  if (!c.dropped) return sorted.slots;
  const Tensor probs = random_tensor({c.tokens, c.k}, DType::f32, 72, 0.0, 1.0);
  const int64_t capacity = c.tokens * c.k / experts / 2;
  return capacity_on_cpu(sorted, probs, capacity, DropPolicy::probs).slots.clone();
}

std::string describe(const PermuteCase& c, DType dtype) {
  return std::string(dtype_name(dtype)) + " tokens " + std::to_string(c.tokens) + " width " +
         std::to_string(c.width) + " k " + std::to_string(c.k) + (c.dropped ? " dropped" : "");
}

TEST_F(CudaMoeOps, PermuteAndUnpermuteMatchCpu) {
  for (DType dtype : kDtypes)
    for (const PermuteCase& c : kPermuteCases) {
      SCOPED_TRACE(describe(c, dtype));
      const Tensor slots = listed_slots(c);
      const Tensor device_slots = to_device(slots, DType::i32);
      const int64_t rows = slots.numel(), slot_count = c.tokens * c.k;
      const double sum_multiple = dtype == DType::f32 ? 0.0 : 1.0;

      const Tensor x = rounded(random_tensor({c.tokens, c.width}, DType::f32, 73), dtype);
      Tensor permuted = Tensor::empty({rows, c.width}, DType::f32);
      ops::moe_permute(x, slots, c.k, permuted, host);
      Tensor got = nan_device(permuted.shape(), dtype, gpu);
      ops::moe_permute(to_device(x, dtype), device_slots, c.k, got, gpu);
      EXPECT_TRUE(matches_cpu("moe_permute", got, permuted, dtype, 0));

      const Tensor dout = rounded(random_tensor({rows, c.width}, DType::f32, 74), dtype);
      Tensor dx = Tensor::empty(x.shape(), DType::f32);
      ops::moe_permute_backward(dout, slots, c.k, dx, host);
      got = nan_device(dx.shape(), dtype, gpu);
      ops::moe_permute_backward(to_device(dout, dtype), device_slots, c.k, got, gpu);
      EXPECT_TRUE(matches_cpu("moe_permute_backward", got, dx, dtype, sum_multiple));

      const Tensor y = rounded(random_tensor({rows, c.width}, DType::f32, 75), dtype);
      Tensor y_slots = Tensor::empty({slot_count, c.width}, DType::f32);
      ops::moe_unpermute(y, slots, y_slots, host);
      got = nan_device(y_slots.shape(), dtype, gpu);
      ops::moe_unpermute(to_device(y, dtype), device_slots, got, gpu);
      EXPECT_TRUE(matches_cpu("moe_unpermute", got, y_slots, dtype, 0));

      const Tensor dy_slots = rounded(random_tensor({slot_count, c.width}, DType::f32, 76), dtype);
      Tensor dy = Tensor::empty({rows, c.width}, DType::f32);
      ops::moe_unpermute_backward(dy_slots, slots, dy, host);
      got = nan_device(dy.shape(), dtype, gpu);
      ops::moe_unpermute_backward(to_device(dy_slots, dtype), device_slots, got, gpu);
      EXPECT_TRUE(matches_cpu("moe_unpermute_backward", got, dy, dtype, 0));
    }
}

// probs stay f32 (router outputs) with bf16 activations.
TEST_F(CudaMoeOps, CombineMatchesCpu) {
  for (DType dtype : kDtypes)
    for (const PermuteCase& c : kPermuteCases) {
      SCOPED_TRACE(describe(c, dtype));
      const int64_t slot_count = c.tokens * c.k;
      const Tensor y_slots = rounded(random_tensor({slot_count, c.width}, DType::f32, 81), dtype);
      const Tensor probs = random_tensor({c.tokens, c.k}, DType::f32, 82, 0.0, 1.0);
      Tensor out = Tensor::empty({c.tokens, c.width}, DType::f32);
      ops::moe_combine(y_slots, probs, out, host);
      Tensor got = nan_device(out.shape(), dtype, gpu);
      ops::moe_combine(to_device(y_slots, dtype), to_device(probs, DType::f32), got, gpu);
      EXPECT_TRUE(matches_cpu("moe_combine", got, out, dtype, dtype == DType::f32 ? 0.0 : 1.0));

      const Tensor dout = rounded(random_tensor({c.tokens, c.width}, DType::f32, 83), dtype);
      Tensor dy_slots = Tensor::empty(y_slots.shape(), DType::f32);
      Tensor dprobs = Tensor::empty(probs.shape(), DType::f32);
      ops::moe_combine_backward(dout, y_slots, probs, dy_slots, dprobs, host);
      Tensor got_dy = nan_device(y_slots.shape(), dtype, gpu);
      Tensor got_dprobs = nan_device(probs.shape(), DType::f32, gpu);
      ops::moe_combine_backward(to_device(dout, dtype), to_device(y_slots, dtype),
                                to_device(probs, DType::f32), got_dy, got_dprobs, gpu);
      // dy_slots = p * dout is one rounding on both backends (then bf16's).
      EXPECT_TRUE(matches_cpu("moe_combine dy_slots", got_dy, dy_slots, dtype,
                              dtype == DType::f32 ? 1.0 : 2.0));
      EXPECT_TRUE(matches_cpu("moe_combine dprobs", got_dprobs, dprobs, DType::f32,
                              4.0 * std::sqrt(static_cast<double>(c.width))));
    }
}

// --- AdamW ----------------------------------------------------------------------------------

// Two consecutive steps from non-zero moments, with weight decay, early (strong bias correction)
// and late.
TEST_F(CudaMoeOps, AdamWMatchesCpu) {
  const ops::AdamWOptions options{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f};
  for (int64_t first_step : {1, 1000}) {
    SCOPED_TRACE("step " + std::to_string(first_step));
    const Shape shape{4099};
    Tensor param = random_tensor(shape, DType::f32, 91);
    Tensor m = random_tensor(shape, DType::f32, 92, -0.1, 0.1);
    Tensor v = random_tensor(shape, DType::f32, 93, 0.0, 0.01);
    Tensor got_param = to_device(param, DType::f32), got_m = to_device(m, DType::f32),
           got_v = to_device(v, DType::f32);
    for (int64_t step = first_step; step < first_step + 2; ++step) {
      const Tensor grad = random_tensor(shape, DType::f32, 94 + static_cast<uint64_t>(step));
      ops::adamw_step(param, grad, m, v, options, step, host);
      ops::adamw_step(got_param, to_device(grad, DType::f32), got_m, got_v, options, step, gpu);
    }
    EXPECT_TRUE(matches_cpu("adamw param", got_param, param, DType::f32, 4));
    EXPECT_TRUE(matches_cpu("adamw m", got_m, m, DType::f32, 4));
    EXPECT_TRUE(matches_cpu("adamw v", got_v, v, DType::f32, 4));
  }
}

}  // namespace
}  // namespace moe
