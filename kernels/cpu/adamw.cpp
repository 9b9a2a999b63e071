// AdamW on the CPU (Loshchilov & Hutter, decoupled weight decay). Per element:
//   m = b1*m + (1-b1)*g,   v = b2*v + (1-b2)*g^2
//   p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)
// with the bias corrections m_hat = m / (1 - b1^step), v_hat = v / (1 - b2^step). The decay reads p
// before the update and never enters the moments. Each element's arithmetic is in the tensors'
// own precision: f64 in double (the reference), f32 in f32 (a loop the compiler vectorises), with
// the options and bias corrections computed in double and rounded once to that precision. OpenMP
// over elements.
// f32/f64 only: bf16 training keeps master weights, gradients and moments in f32 (bf16 is an
// InputError).
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v,
                const AdamWOptions& options, int64_t step, Stream&) {
  const double correction1 = 1.0 - std::pow(double{options.beta1}, static_cast<double>(step));
  const double correction2 = 1.0 - std::pow(double{options.beta2}, static_cast<double>(step));
  float_dispatch(param.dtype(), "adamw_step", [&]<typename T>() {
    const T lr = static_cast<T>(options.lr), eps = static_cast<T>(options.eps);
    const T b1 = static_cast<T>(options.beta1), b2 = static_cast<T>(options.beta2);
    const T one_minus_b1 = static_cast<T>(1.0 - options.beta1);
    const T one_minus_b2 = static_cast<T>(1.0 - options.beta2);
    const T wd = static_cast<T>(options.weight_decay);
    const T c1 = static_cast<T>(correction1), c2 = static_cast<T>(correction2);
    T* pp = param.data<T>();
    const T* pg = grad.data<T>();
    T* pm = m.data<T>();
    T* pv = v.data<T>();
    const int64_t n = param.numel();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const T g = pg[i];
      const T mi = b1 * pm[i] + one_minus_b1 * g;
      const T vi = b2 * pv[i] + one_minus_b2 * g * g;
      const T update = (mi / c1) / (std::sqrt(vi / c2) + eps);
      const T p = pp[i];
      pm[i] = mi;
      pv[i] = vi;
      pp[i] = p - lr * (update + wd * p);
    }
  });
}

}  // namespace moe::cpu
