// Memory ops on CUDA: fill and copy. fill writes the element's bit pattern, computed on the host
// with the same conversion as the CPU backend (core/half.h), so one kernel per element width serves
// every dtype and CPU and CUDA fills agree bit for bit.
#include <cstring>

#include "core/half.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace moe::cuda {

namespace {

template <typename Bits>
__global__ void fill_kernel(Bits* out, int64_t n, Bits pattern) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = pattern;
}

template <typename Bits>
void launch_fill(void* out, int64_t n, Bits pattern, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  fill_kernel<Bits>
      <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(static_cast<Bits*>(out), n, pattern);
  MOE_CUDA_CHECK(cudaGetLastError());
}

template <typename Bits, typename Value>
Bits bit_pattern(Value value) {
  static_assert(sizeof(Bits) == sizeof(Value));
  Bits bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

}  // namespace

void fill(Tensor& out, double value, Stream& stream) {
  const int64_t n = out.numel();
  if (n == 0) return;
  MOE_CUDA_CHECK(cudaSetDevice(out.device().index));
  auto s = static_cast<cudaStream_t>(stream.handle);
  const float f = static_cast<float>(value);
  switch (out.dtype()) {
    case DType::f32:
      return launch_fill(out.raw(), n, bit_pattern<uint32_t>(f), s);
    case DType::f64:
      return launch_fill(out.raw(), n, bit_pattern<uint64_t>(value), s);
    case DType::bf16:
      return launch_fill(out.raw(), n, float_to_bf16(f).bits, s);
    case DType::f16:
      return launch_fill(out.raw(), n, float_to_f16(f).bits, s);
    case DType::i32:
      return launch_fill(out.raw(), n, bit_pattern<uint32_t>(static_cast<int32_t>(value)), s);
    case DType::i64:
      return launch_fill(out.raw(), n, bit_pattern<uint64_t>(static_cast<int64_t>(value)), s);
  }
}

void copy(const Tensor& src, Tensor& dst, Stream& stream) {
  if (src.nbytes() == 0) return;
  MOE_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDefault,
                                 static_cast<cudaStream_t>(stream.handle)));
}

}  // namespace moe::cuda
