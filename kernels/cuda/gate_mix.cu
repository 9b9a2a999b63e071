// The per-element softmax mixture of BTS stitch layers on CUDA: out[i] = sum_m g[m,i] values[m,i],
// g[:,i] = softmax over m of logits[:,i], with i = (n, d) and the M inputs E = N * D elements
// apart. One thread per element (grid-stride), looping over the M inputs in f32 with the max
// subtracted, so a saturated gate gives weights of exactly 1 and 0 rather than overflow. Backward
// assigns dvalues[m,i] = g[m,i] dout[i] and dlogits[m,i] = g[m,i] (values[m,i] - out[i]) dout[i].
// bf16 rounding points (as kernels/cpu/gate_mix.cpp): each output (out; dlogits, dvalues) is
// rounded once; the CPU computes the softmax and the mixture in double, this kernel in f32.
#include "kernels/cuda/launch.cuh"

namespace moe::cuda {

namespace {

// The max of logits[:, i] and sum_m exp(logits[m, i] - max).
template <typename T>
struct SoftmaxStats {
  float max, sum;
  __device__ SoftmaxStats(const T* logits, int64_t models, int64_t elements, int64_t i) {
    max = to_float(logits[i]);
    for (int64_t m = 1; m < models; ++m) max = fmaxf(max, to_float(logits[m * elements + i]));
    sum = 0;
    for (int64_t m = 0; m < models; ++m) sum += expf(to_float(logits[m * elements + i]) - max);
  }
  __device__ float weight(const T* logits, int64_t elements, int64_t m, int64_t i) const {
    return expf(to_float(logits[m * elements + i]) - max) / sum;
  }
};

template <typename T>
__global__ void gate_mix_forward_kernel(const T* logits, const T* values, int64_t models,
                                        int64_t elements, T* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < elements;
       i += stride) {
    const SoftmaxStats<T> stats(logits, models, elements, i);
    float mix = 0;
    for (int64_t m = 0; m < models; ++m)
      mix += stats.weight(logits, elements, m, i) * to_float(values[m * elements + i]);
    out[i] = from_float<T>(mix);
  }
}

template <typename T>
__global__ void gate_mix_backward_kernel(const T* dout, const T* logits, const T* values,
                                         const T* out, int64_t models, int64_t elements, T* dlogits,
                                         T* dvalues) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < elements;
       i += stride) {
    const SoftmaxStats<T> stats(logits, models, elements, i);
    const float d = to_float(dout[i]), o = to_float(out[i]);
    for (int64_t m = 0; m < models; ++m) {
      const int64_t at = m * elements + i;
      const float g = stats.weight(logits, elements, m, i);
      const float v = to_float(values[at]);
      dvalues[at] = from_float<T>(g * d);
      dlogits[at] = from_float<T>(g * (v - o) * d);
    }
  }
}

}  // namespace

void gate_mix_forward(const Tensor& logits, const Tensor& values, Tensor& out, Stream& stream) {
  const int64_t models = logits.dim(0), elements = out.numel();
  if (elements == 0) return;
  use_device(out);
  float_dispatch(out.dtype(), "gate_mix_forward", [&]<typename T>() {
    gate_mix_forward_kernel<T><<<blocks_for(elements), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(logits), ptr<T>(values), models, elements, ptr<T>(out));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void gate_mix_backward(const Tensor& dout, const Tensor& logits, const Tensor& values,
                       const Tensor& out, Tensor& dlogits, Tensor& dvalues, Stream& stream) {
  const int64_t models = logits.dim(0), elements = out.numel();
  if (elements == 0) return;
  use_device(out);
  float_dispatch(out.dtype(), "gate_mix_backward", [&]<typename T>() {
    gate_mix_backward_kernel<T><<<blocks_for(elements), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(dout), ptr<T>(logits), ptr<T>(values), ptr<T>(out), models, elements,
        ptr<T>(dlogits), ptr<T>(dvalues));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace moe::cuda
