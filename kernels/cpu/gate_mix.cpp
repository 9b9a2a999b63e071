// The per-element softmax mixture of BTS stitch layers on the CPU. Each (n, d) mixes M values with
// weights softmax(logits[:, n, d]) computed in double with the max subtracted, so a saturated gate
// (one logit far above the rest) gives weights of exactly 1 and 0 rather than overflow.
// bf16 (as kernels/cuda/gate_mix.cu): inputs widened exactly, the mixture and its gradients
// computed in double, each output (out; dlogits, dvalues) rounded once on store.
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

// Fills weights[0..models) with the softmax over m of logits[m * stride + i].
template <typename T>
static void softmax_over_models(const T* logits, int64_t models, int64_t stride, int64_t i,
                                double* weights) {
  double max = widen(logits[i]);
  for (int64_t m = 1; m < models; ++m)
    max = std::max(max, static_cast<double>(widen(logits[m * stride + i])));
  double sum = 0;
  for (int64_t m = 0; m < models; ++m)
    sum += weights[m] = std::exp(widen(logits[m * stride + i]) - max);
  for (int64_t m = 0; m < models; ++m) weights[m] /= sum;
}

void gate_mix_forward(const Tensor& logits, const Tensor& values, Tensor& out, Stream&) {
  const int64_t models = logits.dim(0), elements = out.numel();
  storage_dispatch(out.dtype(), "gate_mix_forward", [&]<typename T>() {
    const T* pl = logits.data<T>();
    const T* pv = values.data<T>();
    T* po = out.data<T>();
#pragma omp parallel
    {
      std::vector<double> g(static_cast<size_t>(models));
#pragma omp for schedule(static)
      for (int64_t i = 0; i < elements; ++i) {
        softmax_over_models(pl, models, elements, i, g.data());
        double sum = 0;
        for (int64_t m = 0; m < models; ++m) sum += g[m] * widen(pv[m * elements + i]);
        po[i] = narrow<T>(sum);
      }
    }
  });
}

void gate_mix_backward(const Tensor& dout, const Tensor& logits, const Tensor& values,
                       const Tensor& out, Tensor& dlogits, Tensor& dvalues, Stream&) {
  const int64_t models = logits.dim(0), elements = out.numel();
  storage_dispatch(out.dtype(), "gate_mix_backward", [&]<typename T>() {
    const T* pd = dout.data<T>();
    const T* pl = logits.data<T>();
    const T* pv = values.data<T>();
    const T* po = out.data<T>();
    T* pdl = dlogits.data<T>();
    T* pdv = dvalues.data<T>();
#pragma omp parallel
    {
      std::vector<double> g(static_cast<size_t>(models));
#pragma omp for schedule(static)
      for (int64_t i = 0; i < elements; ++i) {
        softmax_over_models(pl, models, elements, i, g.data());
        const double d = widen(pd[i]);
        for (int64_t m = 0; m < models; ++m) {
          pdv[m * elements + i] = narrow<T>(g[m] * d);
          pdl[m * elements + i] = narrow<T>(
              g[m] * (static_cast<double>(widen(pv[m * elements + i])) - widen(po[i])) * d);
        }
      }
    }
  });
}

}  // namespace moe::cpu
