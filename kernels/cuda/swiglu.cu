// SwiGLU on CUDA: out = silu(gate) * up, silu(g) = g * s with s = sigmoid(g) = 1 / (1 + exp(-g));
// backward: dgate = dout * up * s * (1 + g * (1 - s)), dup = dout * g * s (both assigned).
// Elementwise grid-stride kernels in f32 with the accurate expf. Every output element is written
// after its inputs are read, so outputs may alias inputs.
// bf16 rounding points (as kernels/cpu/swiglu.cpp): every output (out; dgate, dup) is computed in
// f32 from widened inputs in the CPU's order and rounded once; expf (within 2 ulp) and nvcc's fused
// multiply-adds keep the f32 values a few ulp from the CPU's.
#include "kernels/cuda/launch.cuh"

namespace moe::cuda {

namespace {

__device__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

template <typename T>
__global__ void swiglu_forward_kernel(const T* gate, const T* up, int64_t n, T* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float g = to_float(gate[i]);
    out[i] = from_float<T>(g * sigmoid(g) * to_float(up[i]));
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(const T* dout, const T* gate, const T* up, int64_t n,
                                       T* dgate, T* dup) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float d = to_float(dout[i]), g = to_float(gate[i]), u = to_float(up[i]);
    const float s = sigmoid(g);
    dgate[i] = from_float<T>(d * u * s * (1.0f + g * (1.0f - s)));
    dup[i] = from_float<T>(d * g * s);
  }
}

}  // namespace

void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out, Stream& stream) {
  const int64_t n = gate.numel();
  if (n == 0) return;
  use_device(gate);
  float_dispatch(gate.dtype(), "swiglu_forward", [&]<typename T>() {
    swiglu_forward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(gate), ptr<T>(up), n, ptr<T>(out));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
                     Tensor& dup, Stream& stream) {
  const int64_t n = gate.numel();
  if (n == 0) return;
  use_device(gate);
  float_dispatch(gate.dtype(), "swiglu_backward", [&]<typename T>() {
    swiglu_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(dout), ptr<T>(gate), ptr<T>(up), n, ptr<T>(dgate), ptr<T>(dup));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace moe::cuda
