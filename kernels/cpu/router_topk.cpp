// Router top-k on the CPU, one token row at a time (OpenMP over rows), math in double.
// - Scores: softmax over experts (max-subtracted) or an elementwise sigmoid.
// - Selection ranks experts by key = score + bias with a full comparator (key descending, then
//   expert id ascending), so ties resolve the same way on every machine and thread count. The
//   bias only ranks; the gate weights are the raw scores of the chosen experts.
// - Group-limited choice: a group's key is its best key plus its second best (added in that order,
//   in double); groups rank like experts; the experts of the other groups get key -inf, so they
//   rank after every kept one.
// - Gates: optionally divided by their sum over the k chosen, then multiplied by the scaling.
// Backward runs the chain in reverse: scaling, the renormalization quotient, then the softmax
// Jacobian s_e (g_e - sum_f s_f g_f) or the sigmoid derivative s (1 - s), where g is the gradient
// at the scores: the optional dscores plus what flows back from dprobs. Selection has no gradient.
// f32/f64 only: bf16 training keeps router logits, scores and gates in f32 (bf16 is an InputError).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

namespace {

template <typename T>
void compute_scores(const T* logits, int64_t experts, RouterScore score, T* scores) {
  if (score == RouterScore::sigmoid) {
    for (int64_t e = 0; e < experts; ++e)
      scores[e] = static_cast<T>(1.0 / (1.0 + std::exp(-static_cast<double>(logits[e]))));
    return;
  }
  const double max = *std::max_element(logits, logits + experts);
  double sum = 0;
  for (int64_t e = 0; e < experts; ++e) sum += std::exp(logits[e] - max);
  for (int64_t e = 0; e < experts; ++e) scores[e] = static_cast<T>(std::exp(logits[e] - max) / sum);
}

// (key, id) ranks before (other_key, other_id): key descending, then id ascending.
bool ranks_before(double key, int32_t id, double other_key, int32_t other_id) {
  return key > other_key || (key == other_key && id < other_id);
}

// The experts' keys, score + bias (NaN as -inf, so the order stays a strict weak order), with the
// experts of every group but the kept ones at -inf.
template <typename T>
void expert_keys(const T* scores, const T* bias, int64_t experts, const RouterTopkOptions& options,
                 std::vector<double>& keys) {
  keys.resize(static_cast<size_t>(experts));
  for (int64_t e = 0; e < experts; ++e) {
    const double value =
        static_cast<double>(scores[e]) + (bias ? static_cast<double>(bias[e]) : 0.0);
    keys[e] = std::isnan(value) ? -INFINITY : value;
  }
  if (options.groups == 1) return;
  const int64_t size = experts / options.groups;
  std::vector<double> group_keys(static_cast<size_t>(options.groups));
  for (int g = 0; g < options.groups; ++g) {
    double best = -INFINITY, second = -INFINITY;
    for (int64_t e = g * size; e < (g + 1) * size; ++e) {
      if (keys[e] > best) {
        second = best;
        best = keys[e];
      } else if (keys[e] > second) {
        second = keys[e];
      }
    }
    group_keys[g] = size == 1 ? best : best + second;
  }
  std::vector<int32_t> groups(static_cast<size_t>(options.groups));
  std::iota(groups.begin(), groups.end(), 0);
  std::partial_sort(
      groups.begin(), groups.begin() + options.kept_groups, groups.end(),
      [&](int32_t a, int32_t b) { return ranks_before(group_keys[a], a, group_keys[b], b); });
  std::vector<bool> kept(static_cast<size_t>(options.groups), false);
  for (int j = 0; j < options.kept_groups; ++j) kept[groups[j]] = true;
  for (int64_t e = 0; e < experts; ++e)
    if (!kept[e / size]) keys[e] = -INFINITY;
}

// The k expert ids with the highest keys, best first, ties to the lower id.
void choose_experts(const std::vector<double>& keys, int k, std::vector<int32_t>& order) {
  order.resize(keys.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int32_t a, int32_t b) { return ranks_before(keys[a], a, keys[b], b); });
}

}  // namespace

void router_topk_forward(const Tensor& logits, const Tensor& bias, const RouterTopkOptions& options,
                         Tensor& probs, Tensor& expert_ids, Tensor& scores, Stream&) {
  const int64_t tokens = logits.dim(0), experts = logits.dim(1);
  const int k = options.k;
  float_dispatch(logits.dtype(), "router_topk_forward", [&]<typename T>() {
    const T* pb = bias.defined() ? bias.data<T>() : nullptr;
#pragma omp parallel
    {
      std::vector<int32_t> order;
      std::vector<double> keys;
#pragma omp for schedule(static)
      for (int64_t n = 0; n < tokens; ++n) {
        T* s = scores.data<T>() + n * experts;
        compute_scores(logits.data<T>() + n * experts, experts, options.score, s);
        expert_keys(s, pb, experts, options, keys);
        choose_experts(keys, k, order);
        double sum = 0;
        for (int j = 0; j < k; ++j) sum += s[order[j]];
        const double norm = options.renormalize ? options.scaling / sum : options.scaling;
        for (int j = 0; j < k; ++j) {
          expert_ids.data<int32_t>()[n * k + j] = order[j];
          probs.data<T>()[n * k + j] = static_cast<T>(s[order[j]] * norm);
        }
      }
    }
  });
}

void router_topk_backward(const Tensor& dprobs, const Tensor& dscores, const Tensor& expert_ids,
                          const Tensor& scores, const RouterTopkOptions& options, Tensor& dlogits,
                          Stream&) {
  const int64_t tokens = scores.dim(0), experts = scores.dim(1);
  const int k = options.k;
  const int32_t* ids = expert_ids.data<int32_t>();
  for (int64_t i = 0; i < tokens * k; ++i)
    MOE_CHECK(ids[i] >= 0 && ids[i] < experts, "router_topk_backward: expert_ids[", i / k, ", ",
              i % k, "] = ", ids[i], " is outside [0, ", experts, ")");
  float_dispatch(scores.dtype(), "router_topk_backward", [&]<typename T>() {
#pragma omp parallel
    {
      std::vector<double> g(static_cast<size_t>(experts));  // the gradient at this row's scores
#pragma omp for schedule(static)
      for (int64_t n = 0; n < tokens; ++n) {
        const T* s = scores.data<T>() + n * experts;
        const T* dp = dprobs.data<T>() + n * k;
        const int32_t* chosen = ids + n * k;
        if (dscores.defined())
          std::copy_n(dscores.data<T>() + n * experts, experts, g.begin());
        else
          std::fill(g.begin(), g.end(), 0.0);
        double sum = 0, weighted = 0;  // S = sum of chosen scores, sum_j dp_j * s_j
        for (int j = 0; j < k; ++j) {
          sum += s[chosen[j]];
          weighted += static_cast<double>(dp[j]) * s[chosen[j]];
        }
        for (int j = 0; j < k; ++j) {
          g[chosen[j]] += options.renormalize
                              ? options.scaling * (dp[j] / sum - weighted / (sum * sum))
                              : options.scaling * static_cast<double>(dp[j]);
        }
        T* dl = dlogits.data<T>() + n * experts;
        if (options.score == RouterScore::sigmoid) {
          for (int64_t e = 0; e < experts; ++e) dl[e] = static_cast<T>(g[e] * s[e] * (1.0 - s[e]));
        } else {
          double dot = 0;
          for (int64_t e = 0; e < experts; ++e) dot += g[e] * s[e];
          for (int64_t e = 0; e < experts; ++e) dl[e] = static_cast<T>(s[e] * (g[e] - dot));
        }
      }
    }
  });
}

}  // namespace moe::cpu
