// Fused softmax cross-entropy over the vocabulary on the CPU. Per row n:
//   lse[n] = max + log(sum_v exp(logits[n,v] - max))   (sum in double, stable for any logit scale)
//   loss[n] = lse[n] - logits[n, target[n]]
//   dlogits[n,v] = grad_scale * (exp(logits[n,v] - lse[n]) - [v == target[n]])
// Softmax probabilities are never stored: backward recomputes them from the saved lse. Rows whose
// target is ignore_index get loss 0 and gradient 0 (their lse is still written). Targets are
// validated in a serial pass before the OpenMP loop, because an exception must not leave a parallel
// region.
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"
#include "kernels/cpu/logsumexp.h"

namespace moe::cpu {

static void check_targets(const char* op, const Tensor& targets, int ignore_index, int64_t vocab) {
  const int32_t* pt = targets.data<int32_t>();
  for (int64_t n = 0; n < targets.numel(); ++n) {
    if (pt[n] == ignore_index) continue;
    MOE_CHECK(pt[n] >= 0 && pt[n] < vocab, op, ": targets[", n, "] = ", pt[n],
              " is out of range for vocab size ", vocab, " (and is not ignore_index ", ignore_index,
              ")");
  }
}

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int ignore_index,
                           Tensor& losses, Tensor& lse, Stream&) {
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  check_targets("cross_entropy_forward", targets, ignore_index, vocab);
  float_dispatch(logits.dtype(), "cross_entropy_forward", [&]<typename T>() {
    const T* px = logits.data<T>();
    const int32_t* pt = targets.data<int32_t>();
    T* ploss = losses.data<T>();
    T* plse = lse.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n) {
      const T* row = px + n * vocab;
      const double row_lse = logsumexp(row, vocab);
      plse[n] = static_cast<T>(row_lse);
      ploss[n] = pt[n] == ignore_index ? T(0) : static_cast<T>(row_lse - row[pt[n]]);
    }
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            int ignore_index, float grad_scale, Tensor& dlogits, Stream&) {
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  check_targets("cross_entropy_backward", targets, ignore_index, vocab);
  float_dispatch(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
    const T* px = logits.data<T>();
    const int32_t* pt = targets.data<int32_t>();
    const T* plse = lse.data<T>();
    T* pd = dlogits.data<T>();
    const double scale = grad_scale;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < rows; ++n) {
      T* drow = pd + n * vocab;
      if (pt[n] == ignore_index) {
        for (int64_t v = 0; v < vocab; ++v) drow[v] = T(0);
        continue;
      }
      const T* row = px + n * vocab;
      const double row_lse = plse[n];
      for (int64_t v = 0; v < vocab; ++v) {
        const double prob = std::exp(static_cast<double>(row[v]) - row_lse);
        drow[v] = static_cast<T>(scale * (prob - (v == pt[n] ? 1.0 : 0.0)));
      }
    }
  });
}

}  // namespace moe::cpu
