// AdamW on the CPU (Loshchilov & Hutter, decoupled weight decay). Per element:
//   m = b1*m + (1-b1)*g,   v = b2*v + (1-b2)*g^2
//   p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)
// with the bias corrections m_hat = m / (1 - b1^step), v_hat = v / (1 - b2^step). The decay reads p
// before the update and never enters the moments. Each element's arithmetic is in double, rounded
// once on store, so f32 and f64 differ only by that rounding. OpenMP over elements.
// f32/f64 only: bf16 training keeps master weights, gradients and moments in f32 (bf16 is an
// InputError).
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v,
                const AdamWOptions& options, int64_t step, Stream&) {
  const double lr = options.lr, b1 = options.beta1, b2 = options.beta2, eps = options.eps;
  const double wd = options.weight_decay;
  const double correction1 = 1.0 - std::pow(b1, static_cast<double>(step));
  const double correction2 = 1.0 - std::pow(b2, static_cast<double>(step));
  float_dispatch(param.dtype(), "adamw_step", [&]<typename T>() {
    T* pp = param.data<T>();
    const T* pg = grad.data<T>();
    T* pm = m.data<T>();
    T* pv = v.data<T>();
    const int64_t n = param.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const double g = pg[i];
      const double mi = b1 * pm[i] + (1.0 - b1) * g;
      const double vi = b2 * pv[i] + (1.0 - b2) * g * g;
      const double update = (mi / correction1) / (std::sqrt(vi / correction2) + eps);
      const double p = pp[i];
      pm[i] = static_cast<T>(mi);
      pv[i] = static_cast<T>(vi);
      pp[i] = static_cast<T>(p - lr * (update + wd * p));
    }
  });
}

}  // namespace moe::cpu
