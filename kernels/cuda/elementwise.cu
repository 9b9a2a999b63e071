// Memory and elementwise ops on CUDA: fill, copy, copy_columns, convert, add, axpy, scale and
// sum_of_squares.
// - fill and copy_columns move bit patterns, one kernel per element width for every dtype.
// - fill writes the element's bit pattern, computed on the host with the same conversion as the CPU
//   backend (core/half.h), so one kernel per element width serves every dtype and CPU and CUDA
//   fills agree bit for bit.
// - convert widens every float dtype to double (exact) and narrows like the CPU backend (through
//   f32 for the 16-bit types, round to nearest even), so both backends convert bit for bit.
// - sum_of_squares is deterministic: each of a fixed number of blocks (set by the element count
//   only) sums its grid-stride share in f64, then one block adds the partial sums in block order;
//   the total comes back with one copy and a stream synchronize (sum_of_squares_into adds it to a
//   device scalar instead, without waiting).
// bf16 rounding points (as kernels/cpu/elementwise.cpp, bit for bit): add, axpy and scale widen to
// f32, compute in f32 (axpy as y + alpha * x, two roundings, never a fused multiply-add) and round
// once on store; sum_of_squares widens exactly and sums in f64 (its order differs from the CPU's).
#include <algorithm>
#include <cstring>

#include <cuda_fp16.h>

#include "core/half.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"

namespace moe::cuda {

namespace {

template <typename Op>
__global__ void for_each_kernel(int64_t n, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    op(i);
}

// Runs op(i) for every i in [0, n).
template <typename Op>
void for_each(int64_t n, Op op, Stream& stream) {
  if (n == 0) return;
  for_each_kernel<<<blocks_for(n), kThreads, 0, stream_of(stream)>>>(n, op);
  MOE_CUDA_CHECK_LAUNCH();
}

template <typename Bits>
struct Fill {
  Bits* out;
  Bits pattern;
  __device__ void operator()(int64_t i) const { out[i] = pattern; }
};

template <typename Bits>
struct CopyColumns {
  const Bits* src;
  Bits* dst;
  int64_t width, src_stride, dst_stride;
  __device__ void operator()(int64_t i) const {
    const int64_t r = i / width, c = i % width;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
};

template <typename Bits, typename Value>
Bits bit_pattern(Value value) {
  static_assert(sizeof(Bits) == sizeof(Value));
  Bits bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

template <typename Bits>
void launch_fill(Tensor& out, Bits pattern, Stream& stream) {
  for_each(out.numel(), Fill<Bits>{ptr<Bits>(out), pattern}, stream);
}

__device__ double widen(float x) { return x; }
__device__ double widen(double x) { return x; }
__device__ double widen(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ double widen(__half x) { return __half2float(x); }

template <typename T>
__device__ T narrow(double x);
template <>
__device__ float narrow<float>(double x) {
  return __double2float_rn(x);
}
template <>
__device__ double narrow<double>(double x) {
  return x;
}
// A NaN keeps its sign and payload, quieted, as core/half.cpp does (the hardware conversions
// return one canonical NaN), so both backends give the same bits.
template <>
__device__ __nv_bfloat16 narrow<__nv_bfloat16>(double x) {
  const float f = __double2float_rn(x);
  if (!isnan(f)) return __float2bfloat16_rn(f);
  __nv_bfloat16_raw raw;
  raw.x = static_cast<unsigned short>((__float_as_uint(f) >> 16) | 0x0040u);
  return raw;
}
template <>
__device__ __half narrow<__half>(double x) {
  const float f = __double2float_rn(x);
  if (!isnan(f)) return __float2half_rn(f);
  __half_raw raw;
  raw.x = static_cast<unsigned short>(((__float_as_uint(f) >> 16) & 0x8000u) | 0x7e00u);
  return raw;
}

// float_dispatch widened to the storage types convert also handles: f64 and f16.
template <typename Body>
void any_float_dispatch(DType dtype, Body&& body) {
  switch (dtype) {
    case DType::f64:
      body.template operator()<double>();
      return;
    case DType::f16:
      body.template operator()<__half>();
      return;
    default:
      float_dispatch(dtype, "convert", body);
  }
}

template <typename Src, typename Dst>
struct Convert {
  const Src* src;
  Dst* dst;
  __device__ void operator()(int64_t i) const { dst[i] = narrow<Dst>(widen(src[i])); }
};

template <typename T>
struct Add {
  const T* a;
  const T* b;
  T* out;
  __device__ void operator()(int64_t i) const {
    out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
  }
};

template <typename T>
struct Axpy {
  float alpha;
  const T* x;
  T* y;
  __device__ void operator()(int64_t i) const {
    // Two roundings, as on the CPU: nvcc would otherwise fuse them into one multiply-add.
    y[i] = from_float<T>(__fadd_rn(to_float(y[i]), __fmul_rn(alpha, to_float(x[i]))));
  }
};

template <typename T>
struct Scale {
  T* x;
  float factor;
  __device__ void operator()(int64_t i) const { x[i] = from_float<T>(to_float(x[i]) * factor); }
};

constexpr int kMaxPartialSums = 1024;

template <typename T>
__global__ void sum_of_squares_partials(const T* x, int64_t n, double* partials) {
  double sum = 0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const double v = to_float(x[i]);
    sum += v * v;
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void sum_partials(const double* partials, int count, bool accumulate, double* total) {
  double sum = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) *total = accumulate ? *total + sum : sum;
}

// *total = (or +=, when accumulate) the sum of squares of x, without waiting for the device.
void launch_sum_of_squares(const Tensor& x, double* total, bool accumulate, Stream& stream) {
  const int64_t n = x.numel();
  use_device(x);
  const int blocks = static_cast<int>(std::min<unsigned>(blocks_for(n), kMaxPartialSums));
  Tensor partials = Tensor::empty({blocks}, DType::f64, x.device());  // freed in stream order
  double* p = ptr<double>(partials);
  const cudaStream_t s = stream_of(stream);
  float_dispatch(x.dtype(), "sum_of_squares", [&]<typename T>() {
    sum_of_squares_partials<T><<<blocks, kThreads, 0, s>>>(ptr<T>(x), n, p);
    MOE_CUDA_CHECK_LAUNCH();
  });
  sum_partials<<<1, kThreads, 0, s>>>(p, blocks, accumulate, total);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void fill(Tensor& out, double value, Stream& stream) {
  if (out.numel() == 0) return;
  use_device(out);
  const float f = static_cast<float>(value);
  switch (out.dtype()) {
    case DType::f32:
      return launch_fill(out, bit_pattern<uint32_t>(f), stream);
    case DType::f64:
      return launch_fill(out, bit_pattern<uint64_t>(value), stream);
    case DType::bf16:
      return launch_fill(out, float_to_bf16(f).bits, stream);
    case DType::f16:
      return launch_fill(out, float_to_f16(f).bits, stream);
    case DType::i32:
      return launch_fill(out, bit_pattern<uint32_t>(static_cast<int32_t>(value)), stream);
    case DType::i64:
      return launch_fill(out, bit_pattern<uint64_t>(static_cast<int64_t>(value)), stream);
  }
}

void copy(const Tensor& src, Tensor& dst, Stream& stream) {
  if (src.nbytes() == 0) return;
  if (src.is_cpu() && !dst.is_cpu() &&
      upload_staged(src.raw(), dst.raw(), src.nbytes(), dst.device(), stream))
    return;
  MOE_CUDA_CHECK(
      cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDefault, stream_of(stream)));
}

void copy_columns(const Tensor& src, int64_t src_col, Tensor& dst, int64_t dst_col, int64_t width,
                  Stream& stream) {
  use_device(src);
  const auto launch = [&]<typename Bits>() {
    for_each(src.dim(0) * width,
             CopyColumns<Bits>{ptr<Bits>(src) + src_col, ptr<Bits>(dst) + dst_col, width,
                               src.dim(1), dst.dim(1)},
             stream);
  };
  switch (dtype_size(src.dtype())) {
    case 2:
      return launch.template operator()<uint16_t>();
    case 4:
      return launch.template operator()<uint32_t>();
    default:
      return launch.template operator()<uint64_t>();
  }
}

void convert(const Tensor& src, Tensor& dst, Stream& stream) {
  if (src.numel() == 0) return;
  use_device(src);
  if (src.dtype() == dst.dtype()) {
    if (src.raw() != dst.raw()) copy(src, dst, stream);
    return;
  }
  any_float_dispatch(src.dtype(), [&]<typename Src>() {
    any_float_dispatch(dst.dtype(), [&]<typename Dst>() {
      for_each(src.numel(), Convert<Src, Dst>{ptr<Src>(src), ptr<Dst>(dst)}, stream);
    });
  });
}

void add(const Tensor& a, const Tensor& b, Tensor& out, Stream& stream) {
  use_device(a);
  float_dispatch(a.dtype(), "add", [&]<typename T>() {
    for_each(a.numel(), Add<T>{ptr<T>(a), ptr<T>(b), ptr<T>(out)}, stream);
  });
}

void axpy(float alpha, const Tensor& x, Tensor& y, Stream& stream) {
  use_device(x);
  float_dispatch(x.dtype(), "axpy", [&]<typename T>() {
    for_each(x.numel(), Axpy<T>{alpha, ptr<T>(x), ptr<T>(y)}, stream);
  });
}

void scale(Tensor& x, float factor, Stream& stream) {
  use_device(x);
  float_dispatch(x.dtype(), "scale", [&]<typename T>() {
    for_each(x.numel(), Scale<T>{ptr<T>(x), factor}, stream);
  });
}

double sum_of_squares(const Tensor& x, Stream& stream) {
  if (x.numel() == 0) return 0;
  Tensor total = Tensor::empty({1}, DType::f64, x.device());
  launch_sum_of_squares(x, ptr<double>(total), false, stream);
  double value = 0;
  MOE_CUDA_CHECK(cudaMemcpyAsync(&value, total.raw(), sizeof(value), cudaMemcpyDeviceToHost,
                                 stream_of(stream)));
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream_of(stream)));
  return value;
}

void sum_of_squares_into(const Tensor& x, Tensor& total, Stream& stream) {
  if (x.numel() > 0) launch_sum_of_squares(x, ptr<double>(total), true, stream);
}

}  // namespace moe::cuda
