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
// bf16 logits (as kernels/cuda/cross_entropy.cu): lse and target_logits are f32 (compute_t; other
// dtypes are an InputError); lse is computed from the widened logits in double and narrowed to
// f32, the target logit is widened exactly; dlogits is computed in double and rounded once.
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
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

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int ignore_index,
                           int64_t vocab_start, Tensor& target_logits, Tensor& lse, Stream&) {
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  check_targets("cross_entropy_forward", targets, ignore_index);
  storage_dispatch(logits.dtype(), "cross_entropy_forward", [&]<typename T>() {
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
  storage_dispatch(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
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
