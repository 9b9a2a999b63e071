// A per-token sigmoid gate on CUDA: out[n,:] = s[n] * x[n,:], s = sigmoid(logits[n]), in f32.
// One block per row (grid-stride over rows), threads over the width. Backward assigns
// dx = s * dout and dlogits[n] = s (1 - s) * sum_d dout[n,d] x[n,d], the sum by block_sum (a fixed
// order, so deterministic). Each element is read before it is written, so outputs may alias inputs.
// bf16 rounding points (as kernels/cpu/sigmoid_gate.cpp): s is f32, out, dx and dlogits are each
// rounded once. The CPU computes s and the backward in double, so the two agree to f32 accuracy.
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"

namespace moe::cuda {

namespace {

__device__ float sigmoid(float logit) { return 1.0f / (1.0f + expf(-logit)); }

template <typename T>
__global__ void sigmoid_gate_forward_kernel(const T* x, const T* logits, int64_t rows,
                                            int64_t width, T* out) {
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    const float s = sigmoid(to_float(logits[n]));
    for (int64_t d = threadIdx.x; d < width; d += blockDim.x)
      out[n * width + d] = from_float<T>(s * to_float(x[n * width + d]));
  }
}

template <typename T>
__global__ void sigmoid_gate_backward_kernel(const T* dout, const T* x, const T* logits,
                                             int64_t rows, int64_t width, T* dx, T* dlogits) {
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    const float logit = to_float(logits[n]);
    const float s = sigmoid(logit), one_minus_s = sigmoid(-logit);  // 1 - s without cancellation
    float dot = 0;
    for (int64_t d = threadIdx.x; d < width; d += blockDim.x) {
      const float g = to_float(dout[n * width + d]);
      dot += g * to_float(x[n * width + d]);
      dx[n * width + d] = from_float<T>(s * g);
    }
    dot = block_sum(dot);
    if (threadIdx.x == 0) dlogits[n] = from_float<T>(s * one_minus_s * dot);
  }
}

}  // namespace

void sigmoid_gate_forward(const Tensor& x, const Tensor& logits, Tensor& out, Stream& stream) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  if (rows == 0) return;
  use_device(x);
  float_dispatch(x.dtype(), "sigmoid_gate_forward", [&]<typename T>() {
    sigmoid_gate_forward_kernel<T><<<blocks_for(rows, 1), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(x), ptr<T>(logits), rows, width, ptr<T>(out));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void sigmoid_gate_backward(const Tensor& dout, const Tensor& x, const Tensor& logits, Tensor& dx,
                           Tensor& dlogits, Stream& stream) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  if (rows == 0) return;
  use_device(x);
  float_dispatch(x.dtype(), "sigmoid_gate_backward", [&]<typename T>() {
    sigmoid_gate_backward_kernel<T><<<blocks_for(rows, 1), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(dout), ptr<T>(x), ptr<T>(logits), rows, width, ptr<T>(dx), ptr<T>(dlogits));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace moe::cuda
