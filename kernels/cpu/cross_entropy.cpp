// Fused softmax cross-entropy on the CPU, on one vocabulary shard (vocab-parallel under tensor
// parallelism): logits[N,V] are the classes [vocab_start, vocab_start + V). Per row n, with
// t = target[n] - vocab_start:
//   lse[n] = max + log(sum_v exp(logits[n,v] - max))   (sum in double, stable for any logit scale)
//   target_logits[n] = logits[n, t] if 0 <= t < V, else 0
//   dlogits[n,v] = grad_scale * (exp(logits[n,v] - lse_full[n]) - [v == t])
// The caller combines the shards: lse_full = log(sum_s exp(lse_s)), loss = lse_full - sum_s
// target_logits_s, and passes lse_full to backward. Softmax probabilities are never stored:
// backward recomputes them from that lse. Rows whose target is ignore_index get target logit 0 and
// gradient 0 (their lse is still written). Targets are validated in a serial pass before the OpenMP
// loop, because an exception must not leave a parallel region.
// f32 logits: per row, the max and exp_f32 (fast_math.h) of each logit minus it in f32, loops the
// compiler vectorises, the exps summed in double by lane_sum; lse = max + log(sum) in double,
// rounded to f32. dlogits = grad_scale * exp_f32(logit - lse), then minus grad_scale at the target,
// in f32.
// f64 (the reference): as above with libm exp, all in double.
// bf16 logits (as kernels/cuda/cross_entropy.cu): lse and target_logits are f32 (compute_t; other
// dtypes are an InputError); lse is computed from the widened logits in double and narrowed to
// f32, the target logit is widened exactly; dlogits is computed in double and rounded once.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/float_dispatch.h"
#include "kernels/cpu/logsumexp.h"

namespace moe::cpu {

// Only the lower bound: a shard does not know the full vocabulary size.
static void check_targets(const char* op, const Tensor& targets, int ignore_index) {
  const int32_t* pt = targets.data<int32_t>();
  for (int64_t n = 0; n < targets.numel(); ++n)
    MOE_CHECK(pt[n] >= 0 || pt[n] == ignore_index, op, ": targets[", n, "] = ", pt[n],
              " is negative (and is not ignore_index ", ignore_index, ")");
}

// The target's column in this shard, or -1 when the row is ignored or its target lies elsewhere.
static int64_t shard_column(int32_t target, int ignore_index, int64_t vocab_start, int64_t vocab) {
  const int64_t column = static_cast<int64_t>(target) - vocab_start;
  return target != ignore_index && column >= 0 && column < vocab ? column : -1;
}

namespace {

float logsumexp_f32(const float* row, int64_t vocab) {
  float max = -INFINITY;
#pragma omp simd reduction(max : max)
  for (int64_t v = 0; v < vocab; ++v) max = std::max(max, row[v]);
  if (max == -INFINITY) return -INFINITY;  // every entry -inf: log(0), not inf - inf
  const double sum = lane_sum<double>(vocab, [&](int64_t v) { return exp_f32(row[v] - max); });
  return static_cast<float>(max + std::log(sum));
}

void forward_f32(const Tensor& logits, const int32_t* pt, int ignore_index, int64_t vocab_start,
                 Tensor& target_logits, Tensor& lse) {
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  const float* px = logits.data<float>();
  float* ptarget = target_logits.data<float>();
  float* plse = lse.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < rows; ++n) {
    const float* row = px + n * vocab;
    plse[n] = logsumexp_f32(row, vocab);
    const int64_t column = shard_column(pt[n], ignore_index, vocab_start, vocab);
    ptarget[n] = column < 0 ? 0.0f : row[column];
  }
}

void backward_f32(const Tensor& logits, const int32_t* pt, const Tensor& lse, int ignore_index,
                  int64_t vocab_start, float scale, Tensor& dlogits) {
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  const float* px = logits.data<float>();
  const float* plse = lse.data<float>();
  float* pd = dlogits.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < rows; ++n) {
    float* drow = pd + n * vocab;
    if (pt[n] == ignore_index) {
      std::fill_n(drow, vocab, 0.0f);
      continue;
    }
    const float* row = px + n * vocab;
    const float row_lse = plse[n];
#pragma omp simd
    for (int64_t v = 0; v < vocab; ++v) drow[v] = scale * exp_f32(row[v] - row_lse);
    const int64_t column = shard_column(pt[n], ignore_index, vocab_start, vocab);
    if (column >= 0) drow[column] = scale * (exp_f32(row[column] - row_lse) - 1.0f);
  }
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int ignore_index,
                           int64_t vocab_start, Tensor& target_logits, Tensor& lse, Stream&) {
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  check_targets("cross_entropy_forward", targets, ignore_index);
  fast_f32_dispatch(
      logits.dtype(), "cross_entropy_forward",
      [&] {
        expect_statistics_dtype<float>("cross_entropy_forward", "lse", lse);
        expect_statistics_dtype<float>("cross_entropy_forward", "target_logits", target_logits);
        forward_f32(logits, targets.data<int32_t>(), ignore_index, vocab_start, target_logits, lse);
      },
      [&]<typename T>() {
        using C = compute_t<T>;
        expect_statistics_dtype<T>("cross_entropy_forward", "lse", lse);
        expect_statistics_dtype<T>("cross_entropy_forward", "target_logits", target_logits);
        const T* px = logits.data<T>();
        const int32_t* pt = targets.data<int32_t>();
        C* ptarget = target_logits.data<C>();
        C* plse = lse.data<C>();
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < rows; ++n) {
          const T* row = px + n * vocab;
          plse[n] = static_cast<C>(logsumexp(row, vocab));
          const int64_t column = shard_column(pt[n], ignore_index, vocab_start, vocab);
          ptarget[n] = column < 0 ? C(0) : widen(row[column]);
        }
      });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            int ignore_index, int64_t vocab_start, float grad_scale,
                            Tensor& dlogits, Stream&) {
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  check_targets("cross_entropy_backward", targets, ignore_index);
  fast_f32_dispatch(
      logits.dtype(), "cross_entropy_backward",
      [&] {
        expect_statistics_dtype<float>("cross_entropy_backward", "lse", lse);
        backward_f32(logits, targets.data<int32_t>(), lse, ignore_index, vocab_start, grad_scale,
                     dlogits);
      },
      [&]<typename T>() {
        expect_statistics_dtype<T>("cross_entropy_backward", "lse", lse);
        const T* px = logits.data<T>();
        const int32_t* pt = targets.data<int32_t>();
        const compute_t<T>* plse = lse.data<compute_t<T>>();
        T* pd = dlogits.data<T>();
        const double scale = grad_scale;
#pragma omp parallel for schedule(static)
        for (int64_t n = 0; n < rows; ++n) {
          T* drow = pd + n * vocab;
          if (pt[n] == ignore_index) {
            for (int64_t v = 0; v < vocab; ++v) drow[v] = narrow<T>(0.0f);
            continue;
          }
          const T* row = px + n * vocab;
          const double row_lse = plse[n];
          const int64_t column = shard_column(pt[n], ignore_index, vocab_start, vocab);
          for (int64_t v = 0; v < vocab; ++v) {
            const double prob = std::exp(static_cast<double>(widen(row[v])) - row_lse);
            drow[v] = narrow<T>(scale * (prob - (v == column ? 1.0 : 0.0)));
          }
        }
      });
}

}  // namespace moe::cpu
