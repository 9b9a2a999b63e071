// RMSNorm on CUDA, computed in f32 whatever the activation dtype; rstd[N] is always f32.
// - Forward and the dx part of backward: one block per row (grid-stride over rows), threads over
//   the width, the row's sum (of x^2, or of dy * w * xhat) by block_sum.
// - dweight (accumulated) is deterministic, without atomics: blocks of (row chunk, column range)
//   write the chunk's column sums of dy * xhat to an f32 scratch [chunks, D]; a second kernel adds
//   each column's chunk sums in chunk order into dweight, which may be f32 or the activation dtype.
//   An undefined dweight (a frozen weight) skips both.
// bf16 rounding points (as kernels/cpu/rmsnorm.cpp): y = (x * rstd) * w rounded once, rstd f32,
// each dx rounded once, dweight once per call after all rows are summed (bf16 or f32 dweight). The
// statistics are f32 here where the CPU sums in double, so the two agree to f32 accuracy, not bit
// for bit.
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"

namespace moe::cuda {

namespace {

constexpr int64_t kRowsPerChunk = 64;

template <typename T>
__global__ void rmsnorm_forward_kernel(const T* x, const T* weight, float eps, int64_t rows,
                                       int64_t width, T* y, float* rstd) {
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    const T* xr = x + n * width;
    float sum = 0;
    for (int64_t d = threadIdx.x; d < width; d += blockDim.x) {
      const float v = to_float(xr[d]);
      sum += v * v;
    }
    const float r = 1.0f / sqrtf(block_sum(sum) / static_cast<float>(width) + eps);
    if (threadIdx.x == 0) rstd[n] = r;
    for (int64_t d = threadIdx.x; d < width; d += blockDim.x)
      y[n * width + d] = from_float<T>(to_float(xr[d]) * r * to_float(weight[d]));
  }
}

// dx = rstd * (dy * w - xhat * mean(dy * w * xhat)), xhat = x * rstd.
template <typename T>
__global__ void rmsnorm_dx_kernel(const T* dy, const T* x, const T* weight, const float* rstd,
                                  int64_t rows, int64_t width, T* dx) {
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    const int64_t base = n * width;
    const float r = rstd[n];
    float dot = 0;
    for (int64_t d = threadIdx.x; d < width; d += blockDim.x)
      dot += to_float(dy[base + d]) * to_float(weight[d]) * (to_float(x[base + d]) * r);
    const float mean = block_sum(dot) / static_cast<float>(width);
    for (int64_t d = threadIdx.x; d < width; d += blockDim.x)
      dx[base + d] = from_float<T>(
          r * (to_float(dy[base + d]) * to_float(weight[d]) - to_float(x[base + d]) * r * mean));
  }
}

// Block (c, j): rows [c * kRowsPerChunk, ...) and columns [j * blockDim.x, ...).
template <typename T>
__global__ void rmsnorm_dweight_chunks(const T* dy, const T* x, const float* rstd, int64_t rows,
                                       int64_t width, float* chunk_sums) {
  const int64_t d = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (d >= width) return;
  const int64_t begin = blockIdx.x * kRowsPerChunk;
  const int64_t end = begin + kRowsPerChunk < rows ? begin + kRowsPerChunk : rows;
  float sum = 0;
  for (int64_t n = begin; n < end; ++n)
    sum += to_float(dy[n * width + d]) * (to_float(x[n * width + d]) * rstd[n]);
  chunk_sums[blockIdx.x * width + d] = sum;
}

template <typename W>
__global__ void rmsnorm_dweight_add(const float* chunk_sums, int64_t chunks, int64_t width,
                                    W* dweight) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t d = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; d < width;
       d += stride) {
    float sum = 0;
    for (int64_t c = 0; c < chunks; ++c) sum += chunk_sums[c * width + d];
    dweight[d] = from_float<W>(to_float(dweight[d]) + sum);
  }
}

// rstd is f32 on CUDA whatever the activation dtype.
float* rstd_data(const char* op, const Tensor& rstd) {
  MOE_CHECK(rstd.dtype() == DType::f32, op, ": rstd must be f32 on cuda, got ",
            dtype_name(rstd.dtype()));
  return ptr<float>(rstd);
}

}  // namespace

void rmsnorm_forward(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Tensor& rstd,
                     Stream& stream) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  if (rows == 0) return;
  use_device(x);
  float* pr = rstd_data("rmsnorm_forward", rstd);
  float_dispatch(x.dtype(), "rmsnorm_forward", [&]<typename T>() {
    rmsnorm_forward_kernel<T><<<blocks_for(rows, 1), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(x), ptr<T>(weight), eps, rows, width, ptr<T>(y), pr);
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      Tensor& dx, Tensor& dweight, Stream& stream) {
  const int64_t rows = x.dim(0), width = x.dim(1);
  if (rows == 0 || width == 0) return;
  use_device(x);
  const cudaStream_t s = stream_of(stream);
  const float* pr = rstd_data("rmsnorm_backward", rstd);
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  Tensor chunk_sums;
  if (dweight.defined()) chunk_sums = Tensor::empty({chunks, width}, DType::f32, x.device());
  float_dispatch(x.dtype(), "rmsnorm_backward", [&]<typename T>() {
    if (dweight.defined()) {  // first: dx may overwrite dy or x
      const dim3 grid(static_cast<unsigned>(chunks), blocks_for(width));
      rmsnorm_dweight_chunks<T><<<grid, kThreads, 0, s>>>(ptr<T>(dy), ptr<T>(x), pr, rows, width,
                                                          ptr<float>(chunk_sums));
      MOE_CUDA_CHECK_LAUNCH();
    }
    rmsnorm_dx_kernel<T><<<blocks_for(rows, 1), kThreads, 0, s>>>(
        ptr<T>(dy), ptr<T>(x), ptr<T>(weight), pr, rows, width, ptr<T>(dx));
    MOE_CUDA_CHECK_LAUNCH();
  });
  if (!dweight.defined()) return;
  float_dispatch(dweight.dtype(), "rmsnorm_backward", [&]<typename W>() {
    rmsnorm_dweight_add<W><<<blocks_for(width), kThreads, 0, s>>>(ptr<float>(chunk_sums), chunks,
                                                                  width, ptr<W>(dweight));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace moe::cuda
