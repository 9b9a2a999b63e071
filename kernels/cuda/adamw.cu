// AdamW on CUDA, f32 only (master weights, moments and gradients), the CPU reference's formula
// (kernels/cpu/adamw.cpp): per element, in double and in the same order, rounded once on store,
//   m = b1*m + (1-b1)*g,   v = b2*v + (1-b2)*g^2
//   p -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)
// with m_hat = m / (1 - b1^step), v_hat = v / (1 - b2^step) (the corrections computed on the host,
// as on the CPU); the decay reads p before the update. Elementwise, grid-stride; memory-bound, so
// the double arithmetic costs little.
#include <cmath>

#include "kernels/cuda/launch.cuh"

namespace moe::cuda {

namespace {

struct AdamWConstants {
  double lr, b1, b2, eps, wd, correction1, correction2;
};

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n,
                             AdamWConstants c) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double g = grad[i];
    const double mi = c.b1 * m[i] + (1.0 - c.b1) * g;
    const double vi = c.b2 * v[i] + (1.0 - c.b2) * g * g;
    const double update = (mi / c.correction1) / (sqrt(vi / c.correction2) + c.eps);
    const double p = param[i];
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    param[i] = static_cast<float>(p - c.lr * (update + c.wd * p));
  }
}

}  // namespace

void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v,
                const AdamWOptions& options, int64_t step, Stream& stream) {
  MOE_CHECK(param.dtype() == DType::f32, "adamw_step: dtype ", dtype_name(param.dtype()),
            " is not supported on cuda (supported: f32 master weights and moments)");
  const int64_t n = param.numel();
  if (n == 0) return;
  const double b1 = options.beta1, b2 = options.beta2;
  const AdamWConstants constants{options.lr,
                                 b1,
                                 b2,
                                 options.eps,
                                 options.weight_decay,
                                 1.0 - std::pow(b1, static_cast<double>(step)),
                                 1.0 - std::pow(b2, static_cast<double>(step))};
  use_device(param);
  adamw_kernel<<<blocks_for(n), kThreads, 0, stream_of(stream)>>>(
      ptr<float>(param), ptr<float>(grad), ptr<float>(m), ptr<float>(v), n, constants);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
