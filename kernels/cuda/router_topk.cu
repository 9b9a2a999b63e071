// Router top-k on CUDA, f32 only, with the CPU reference's semantics (kernels/cpu/router_topk.cpp).
// - One warp per token row; lane l holds experts l, l + 32, ... in registers, so E <= 256
//   (kMaxPerLane per lane) and k <= 16 (the lanes that keep the chosen ones). Both are checked.
// - The math is in double, like the CPU's: the f32 scores it writes (and selects on) round the same
//   double values, so ids and gates agree with the CPU whenever no two keys are within rounding.
// - Selection: k rounds of a warp argmax over the experts not yet taken, with the CPU's total order
//   (key = score + bias descending, NaN as -inf, ties to the lower id). The gate sum runs in
//   selection order, as on the CPU.
// - Group-limited choice (groups <= 32, checked): per group, each lane's two best keys are merged
//   over the warp (every lane ends with the group's two best, added best first as on the CPU);
//   every lane then picks the same kept groups in the CPU's order and sets the other groups'
//   experts to -inf.
// - Backward: the gradient at the scores (dscores plus the dprobs chain) stays in the owning lanes'
//   registers; chosen ids outside [0, E) are skipped (the CPU rejects them), so they never index
//   memory.
#include <climits>
#include <initializer_list>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"

namespace moe::cuda {

namespace {

constexpr int kMaxPerLane = 8;  // experts per lane: E <= 32 * 8 = 256
constexpr int kMaxK = 16;
constexpr int kMaxGroups = 32;  // a bit each in a mask
constexpr int kWarpsPerBlock = kThreads / kWarp;

// (key, id) ranks before (other_key, other_id): key descending, then id ascending.
__device__ __forceinline__ bool ranks_before(double key, int id, double other_key, int other_id) {
  return key > other_key || (key == other_key && id < other_id);
}

// Sets the keys of the experts outside the kept groups to -inf (see the header).
__device__ void keep_best_groups(double (&key)[kMaxPerLane], int lane, int experts,
                                 const RouterTopkOptions& options) {
  const int size = experts / options.groups;
  double group_key[kMaxGroups];
  for (int g = 0; g < options.groups; ++g) {
    double best = -INFINITY, second = -INFINITY;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int e = lane + kWarp * i;
      if (e >= experts || e / size != g) continue;
      second = fmax(second, fmin(best, key[i]));
      best = fmax(best, key[i]);
    }
    for (int offset = 16; offset > 0; offset /= 2) {
      const double other_best = __shfl_xor_sync(0xffffffffu, best, offset);
      const double other_second = __shfl_xor_sync(0xffffffffu, second, offset);
      second = fmax(fmin(best, other_best), fmax(second, other_second));
      best = fmax(best, other_best);
    }
    group_key[g] = size == 1 ? best : best + second;
  }
  unsigned kept = 0;
  for (int j = 0; j < options.kept_groups; ++j) {
    int pick = -1;
    for (int g = 0; g < options.groups; ++g)
      if (!(kept >> g & 1u) && (pick < 0 || ranks_before(group_key[g], g, group_key[pick], pick)))
        pick = g;
    kept |= 1u << pick;
  }
#pragma unroll
  for (int i = 0; i < kMaxPerLane; ++i) {
    const int e = lane + kWarp * i;
    if (e < experts && !(kept >> (e / size) & 1u)) key[i] = -INFINITY;
  }
}

__device__ __forceinline__ double score_of(float logit, double max, double sum, RouterScore score) {
  if (score == RouterScore::sigmoid) return 1.0 / (1.0 + exp(-static_cast<double>(logit)));
  return exp(static_cast<double>(logit) - max) / sum;
}

__global__ void router_topk_forward_kernel(const float* logits, const float* bias, int64_t tokens,
                                           int experts, RouterTopkOptions options, float* probs,
                                           int32_t* expert_ids, float* scores) {
  const int lane = threadIdx.x % kWarp;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  const int k = options.k;
  for (int64_t n = first; n < tokens; n += stride) {
    const float* row = logits + n * experts;
    float logit[kMaxPerLane], s[kMaxPerLane];
    float max = -INFINITY;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int e = lane + kWarp * i;
      logit[i] = e < experts ? row[e] : -INFINITY;
      max = fmaxf(max, logit[i]);
    }
    max = warp_max(max);
    double sum = 0;
    if (options.score == RouterScore::softmax) {
#pragma unroll
      for (int i = 0; i < kMaxPerLane; ++i)
        if (lane + kWarp * i < experts) sum += exp(static_cast<double>(logit[i]) - max);
      sum = warp_sum(sum);
    }
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int e = lane + kWarp * i;
      s[i] = static_cast<float>(score_of(logit[i], max, sum, options.score));
      if (e < experts) scores[n * experts + e] = s[i];
    }

    double key[kMaxPerLane];
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int e = lane + kWarp * i;
      key[i] = e < experts ? static_cast<double>(s[i]) + (bias ? static_cast<double>(bias[e]) : 0.0)
                           : -INFINITY;
      if (isnan(key[i])) key[i] = -INFINITY;
    }
    if (options.groups > 1) keep_best_groups(key, lane, experts, options);

    unsigned taken = 0;  // bit i: expert lane + 32 i is chosen
    double chosen_sum = 0;
    int my_id = 0;  // lane j < k keeps the j-th choice
    float my_score = 0;
    for (int j = 0; j < k; ++j) {
      double best_key = -INFINITY;
      int best_id = INT_MAX;
      float best_score = 0;
#pragma unroll
      for (int i = 0; i < kMaxPerLane; ++i) {
        const int e = lane + kWarp * i;
        if (e >= experts || (taken >> i & 1u)) continue;
        if (ranks_before(key[i], e, best_key, best_id))
          best_key = key[i], best_id = e, best_score = s[i];
      }
      for (int offset = 16; offset > 0; offset /= 2) {
        const double key = __shfl_xor_sync(0xffffffffu, best_key, offset);
        const int id = __shfl_xor_sync(0xffffffffu, best_id, offset);
        const float score = __shfl_xor_sync(0xffffffffu, best_score, offset);
        if (ranks_before(key, id, best_key, best_id))
          best_key = key, best_id = id, best_score = score;
      }
      if (best_id % kWarp == lane) taken |= 1u << (best_id / kWarp);
      chosen_sum += best_score;
      if (lane == j) my_id = best_id, my_score = best_score;
    }
    const double norm = options.renormalize ? options.scaling / chosen_sum : options.scaling;
    if (lane < k) {
      expert_ids[n * k + lane] = my_id;
      probs[n * k + lane] = static_cast<float>(my_score * norm);
    }
  }
}

__global__ void router_topk_backward_kernel(const float* dprobs, const float* dscores,
                                            const int32_t* expert_ids, const float* scores,
                                            int64_t tokens, int experts, RouterTopkOptions options,
                                            float* dlogits) {
  const int lane = threadIdx.x % kWarp;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  const int k = options.k;
  for (int64_t n = first; n < tokens; n += stride) {
    const float* s_row = scores + n * experts;
    const float* dp = dprobs + n * k;
    const int32_t* chosen = expert_ids + n * k;
    double s[kMaxPerLane], g[kMaxPerLane];  // this lane's scores and the gradient at them
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int e = lane + kWarp * i;
      s[i] = e < experts ? s_row[e] : 0.0;
      g[i] = e < experts && dscores ? dscores[n * experts + e] : 0.0;
    }
    double sum = 0, weighted = 0;  // S = sum of chosen scores, sum_j dp_j * s_j
    for (int j = 0; j < k; ++j) {
      const int id = chosen[j];
      if (id < 0 || id >= experts) continue;
      sum += s_row[id];
      weighted += static_cast<double>(dp[j]) * s_row[id];
    }
    for (int j = 0; j < k; ++j) {
      const int id = chosen[j];
      const double contribution = options.renormalize
                                      ? options.scaling * (dp[j] / sum - weighted / (sum * sum))
                                      : options.scaling * static_cast<double>(dp[j]);
#pragma unroll
      for (int i = 0; i < kMaxPerLane; ++i)
        if (id == lane + kWarp * i) g[i] += contribution;
    }
    double dot = 0;
    if (options.score == RouterScore::softmax) {
#pragma unroll
      for (int i = 0; i < kMaxPerLane; ++i) dot += g[i] * s[i];
      dot = warp_sum(dot);
    }
#pragma unroll
    for (int i = 0; i < kMaxPerLane; ++i) {
      const int e = lane + kWarp * i;
      if (e >= experts) continue;
      dlogits[n * experts + e] = static_cast<float>(
          options.score == RouterScore::sigmoid ? g[i] * s[i] * (1.0 - s[i]) : s[i] * (g[i] - dot));
    }
  }
}

void check_router_limits(const char* op, const Tensor& scores, const RouterTopkOptions& options,
                         std::initializer_list<const Tensor*> f32_tensors) {
  for (const Tensor* t : f32_tensors)
    MOE_CHECK(!t->defined() || t->dtype() == DType::f32, op, ": dtype ", dtype_name(t->dtype()),
              " is not supported on cuda (router math is f32)");
  MOE_CHECK(scores.dim(1) <= kWarp * kMaxPerLane, op, ": ", scores.dim(1),
            " experts, the cuda router supports at most ", kWarp * kMaxPerLane);
  MOE_CHECK(options.k <= kMaxK, op, ": top-k ", options.k, ", the cuda router supports at most ",
            kMaxK);
  MOE_CHECK(options.groups <= kMaxGroups, op, ": ", options.groups,
            " expert groups, the cuda router supports at most ", kMaxGroups);
}

unsigned warp_blocks(int64_t rows) { return blocks_for(rows, kWarpsPerBlock); }

}  // namespace

void router_topk_forward(const Tensor& logits, const Tensor& bias, const RouterTopkOptions& options,
                         Tensor& probs, Tensor& expert_ids, Tensor& scores, Stream& stream) {
  check_router_limits("router_topk_forward", logits, options, {&logits, &bias, &probs, &scores});
  const int64_t tokens = logits.dim(0);
  if (tokens == 0) return;
  use_device(logits);
  router_topk_forward_kernel<<<warp_blocks(tokens), kThreads, 0, stream_of(stream)>>>(
      ptr<float>(logits), bias.defined() ? ptr<float>(bias) : nullptr, tokens,
      static_cast<int>(logits.dim(1)), options, ptr<float>(probs), ptr<int32_t>(expert_ids),
      ptr<float>(scores));
  MOE_CUDA_CHECK_LAUNCH();
}

void router_topk_backward(const Tensor& dprobs, const Tensor& dscores, const Tensor& expert_ids,
                          const Tensor& scores, const RouterTopkOptions& options, Tensor& dlogits,
                          Stream& stream) {
  check_router_limits("router_topk_backward", scores, options,
                      {&dprobs, &dscores, &scores, &dlogits});
  const int64_t tokens = scores.dim(0);
  if (tokens == 0) return;
  use_device(scores);
  router_topk_backward_kernel<<<warp_blocks(tokens), kThreads, 0, stream_of(stream)>>>(
      ptr<float>(dprobs), dscores.defined() ? ptr<float>(dscores) : nullptr,
      ptr<int32_t>(expert_ids), ptr<float>(scores), tokens, static_cast<int>(scores.dim(1)),
      options, ptr<float>(dlogits));
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
