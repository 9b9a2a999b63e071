// Warp and block reductions for the CUDA kernels. block_sum and block_max must be reached by every
// thread of the block (they synchronize), with blockDim.x a multiple of 32 and at most 1024; every
// thread gets the result.
#pragma once

namespace moe::cuda {

template <typename T>
__device__ __forceinline__ T warp_sum(T value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// Reduces one value per warp through shared memory, then within the first warp's lanes.
template <typename T, typename WarpOp>
__device__ T block_reduce(T value, T identity, WarpOp warp_op) {
  __shared__ T partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  value = warp_op(value);
  __syncthreads();  // a previous call may still be reading partial
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  return warp_op(lane < warps ? partial[lane] : identity);
}

template <typename T>
__device__ T block_sum(T value) {
  return block_reduce(value, T(0), [](T v) { return warp_sum(v); });
}

__device__ inline float block_max(float value) {
  return block_reduce(value, -INFINITY, [](float v) { return warp_max(v); });
}

}  // namespace moe::cuda
