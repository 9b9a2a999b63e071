// What every CUDA kernel file shares: the stream behind a moe::Stream, the device of a call, grid
// sizes, and the f32/bf16 element types. Kernels compute in f32 whatever the storage type (bf16 is
// loaded and widened, results are rounded once on store), so one templated body serves both.
#pragma once

#include <cuda_bf16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace moe::cuda {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

inline cudaStream_t stream_of(Stream& stream) { return static_cast<cudaStream_t>(stream.handle); }

// Makes the tensor's GPU current for the launches that follow.
inline void use_device(const Tensor& t) { MOE_CUDA_CHECK(cudaSetDevice(t.device().index)); }

// Blocks of `threads` covering n items, at most 65535 * 64 (kernels use grid-stride loops).
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks > (1 << 22) ? (1 << 22) : blocks);
}

// After every launch: a bad configuration is reported at the call, not at the next sync.
#define MOE_CUDA_CHECK_LAUNCH() MOE_CUDA_CHECK(cudaGetLastError())

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Runs body.template operator()<T>() with T = float for f32 and __nv_bfloat16 for bf16; any other
// dtype is an InputError naming the op.
template <typename Body>
void float_dispatch(DType dtype, const char* op, Body&& body) {
  switch (dtype) {
    case DType::f32:
      body.template operator()<float>();
      return;
    case DType::bf16:
      body.template operator()<__nv_bfloat16>();
      return;
    default:
      MOE_THROW(InputError, op, ": dtype ", dtype_name(dtype),
                " is not supported on cuda (supported: f32, bf16)");
  }
}

template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw());
}

}  // namespace moe::cuda
