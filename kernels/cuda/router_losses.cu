// The router's auxiliary-loss reductions on CUDA, f32 only (group_sum and group_broadcast also
// bf16: MLA sums and spreads its shared RoPE key over heads), with the CPU reference's semantics
// (kernels/cpu/router_losses.cpp). The tensors are router-sized ([N, E], E ~ 8..256), so the sums
// and exponentials are in double like the CPU's, and every reduction has a fixed order.
// - moe_expert_counts: counts zeroed, then one integer atomic per counted choice (exact); ids
//   outside [0, E) are skipped (the CPU rejects them).
// - group_sum: one block per (group, 32 columns); the 8 warps take every 8th row of the group with
//   the lanes on consecutive columns (coalesced), then the 8 partial sums are added in warp order.
// - group_broadcast: elementwise, grid-stride.
// - logsumexp_rows: one warp per row (max, then the sum of exp in double).
// - logsumexp_rows_backward: elementwise, accumulates into dx.
// - normalize_rows and its backward: one warp per row, the sums in double (as the CPU's, whose
//   order differs only in how the lanes' partial sums are added).
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"

namespace moe::cuda {

namespace {

constexpr int kWarpsPerBlock = kThreads / kWarp;

__global__ void expert_counts_kernel(const int32_t* ids, int64_t tokens, int64_t k, int choices,
                                     int64_t group, int64_t experts, int64_t* counts) {
  const int64_t total = tokens * choices;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / choices, j = i % choices;
    const int32_t e = ids[n * k + j];
    if (e >= 0 && e < experts)
      atomicAdd(reinterpret_cast<unsigned long long*>(counts + (n / group) * experts + e), 1ull);
  }
}

template <typename T>
__global__ void group_sum_kernel(const T* x, int64_t groups, int64_t group, int64_t width, T* out) {
  __shared__ double partial[kWarpsPerBlock][kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t chunks = (width + kWarp - 1) / kWarp;
  for (int64_t b = blockIdx.x; b < groups * chunks; b += gridDim.x) {
    const int64_t g = b / chunks, c = (b % chunks) * kWarp + lane;
    double sum = 0;
    if (c < width)
      for (int64_t n = g * group + warp; n < (g + 1) * group; n += kWarpsPerBlock)
        sum += to_float(x[n * width + c]);
    partial[warp][lane] = sum;
    __syncthreads();
    if (warp == 0 && c < width) {
      double total = 0;
      for (int w = 0; w < kWarpsPerBlock; ++w) total += partial[w][lane];
      out[g * width + c] = from_float<T>(static_cast<float>(total));
    }
    __syncthreads();  // partial is reused by the next (group, chunk)
  }
}

template <typename T>
__global__ void group_broadcast_kernel(const T* w, int64_t rows, int64_t group, int64_t width,
                                       T* out) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * width;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / width, c = i % width;
    out[i] = w[(n / group) * width + c];
  }
}

__global__ void logsumexp_rows_kernel(const float* x, int64_t rows, int64_t width, float* lse) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
       n < rows; n += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const float* row = x + n * width;
    float max = -INFINITY;
    for (int64_t c = lane; c < width; c += kWarp) max = fmaxf(max, row[c]);
    max = warp_max(max);
    double sum = 0;
    for (int64_t c = lane; c < width; c += kWarp) sum += exp(static_cast<double>(row[c]) - max);
    sum = warp_sum(sum);
    if (lane == 0) lse[n] = max == -INFINITY ? -INFINITY : static_cast<float>(max + log(sum));
  }
}

__global__ void logsumexp_rows_backward_kernel(const float* x, const float* lse, const float* dlse,
                                               int64_t rows, int64_t width, float* dx) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * width;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / width;
    const double softmax = exp(static_cast<double>(x[i]) - lse[n]);
    dx[i] += static_cast<float>(dlse[n] * softmax);
  }
}

constexpr double kNormalizeEps = 1e-20;  // as the CPU's

// dout == nullptr: forward, out = x / sum; else backward, out = (dout - sum(dout x) / sum) / sum.
__global__ void normalize_rows_kernel(const float* x, const float* dout, int64_t rows,
                                      int64_t width, float* out) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
       n < rows; n += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const float* row = x + n * width;
    double sum = 0, weighted = 0;
    for (int64_t c = lane; c < width; c += kWarp) {
      sum += row[c];
      if (dout) weighted += static_cast<double>(dout[n * width + c]) * row[c];
    }
    sum = warp_sum(sum) + kNormalizeEps;
    if (dout) weighted = warp_sum(weighted);
    for (int64_t c = lane; c < width; c += kWarp)
      out[n * width + c] =
          static_cast<float>(dout ? (dout[n * width + c] - weighted / sum) / sum : row[c] / sum);
  }
}

void expect_f32(const char* op, const Tensor& t) {
  MOE_CHECK(t.dtype() == DType::f32, op, ": dtype ", dtype_name(t.dtype()),
            " is not supported on cuda (router losses are f32)");
}

}  // namespace

void moe_expert_counts(const Tensor& expert_ids, int64_t group, int choices, Tensor& counts,
                       Stream& stream) {
  if (counts.numel() == 0) return;
  use_device(counts);
  MOE_CUDA_CHECK(cudaMemsetAsync(counts.raw(), 0, counts.nbytes(), stream_of(stream)));
  const int64_t tokens = expert_ids.dim(0);
  if (tokens == 0) return;
  expert_counts_kernel<<<blocks_for(tokens * choices), kThreads, 0, stream_of(stream)>>>(
      ptr<int32_t>(expert_ids), tokens, expert_ids.dim(1), choices, group, counts.dim(1),
      ptr<int64_t>(counts));
  MOE_CUDA_CHECK_LAUNCH();
}

void group_sum(const Tensor& x, int64_t group, Tensor& out, Stream& stream) {
  const int64_t groups = out.dim(0), width = out.dim(1);
  if (out.numel() == 0) return;
  use_device(x);
  float_dispatch(x.dtype(), "group_sum", [&]<typename T>() {
    group_sum_kernel<T>
        <<<blocks_for(groups * ((width + kWarp - 1) / kWarp), 1), kThreads, 0, stream_of(stream)>>>(
            ptr<T>(x), groups, group, width, ptr<T>(out));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void group_broadcast(const Tensor& w, int64_t group, Tensor& out, Stream& stream) {
  if (out.numel() == 0) return;
  use_device(w);
  float_dispatch(w.dtype(), "group_broadcast", [&]<typename T>() {
    group_broadcast_kernel<T><<<blocks_for(out.numel()), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(w), out.dim(0), group, out.dim(1), ptr<T>(out));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void logsumexp_rows(const Tensor& x, Tensor& lse, Stream& stream) {
  expect_f32("logsumexp_rows", x);
  const int64_t rows = x.dim(0);
  if (rows == 0) return;
  use_device(x);
  logsumexp_rows_kernel<<<blocks_for(rows, kWarpsPerBlock), kThreads, 0, stream_of(stream)>>>(
      ptr<float>(x), rows, x.dim(1), ptr<float>(lse));
  MOE_CUDA_CHECK_LAUNCH();
}

void logsumexp_rows_backward(const Tensor& x, const Tensor& lse, const Tensor& dlse, Tensor& dx,
                             Stream& stream) {
  expect_f32("logsumexp_rows_backward", x);
  if (x.numel() == 0) return;
  use_device(x);
  logsumexp_rows_backward_kernel<<<blocks_for(x.numel()), kThreads, 0, stream_of(stream)>>>(
      ptr<float>(x), ptr<float>(lse), ptr<float>(dlse), x.dim(0), x.dim(1), ptr<float>(dx));
  MOE_CUDA_CHECK_LAUNCH();
}

void normalize_rows(const Tensor& x, Tensor& out, Stream& stream) {
  expect_f32("normalize_rows", x);
  const int64_t rows = x.dim(0);
  if (x.numel() == 0) return;
  use_device(x);
  normalize_rows_kernel<<<blocks_for(rows, kWarpsPerBlock), kThreads, 0, stream_of(stream)>>>(
      ptr<float>(x), nullptr, rows, x.dim(1), ptr<float>(out));
  MOE_CUDA_CHECK_LAUNCH();
}

void normalize_rows_backward(const Tensor& x, const Tensor& dout, Tensor& dx, Stream& stream) {
  expect_f32("normalize_rows_backward", x);
  const int64_t rows = x.dim(0);
  if (x.numel() == 0) return;
  use_device(x);
  normalize_rows_kernel<<<blocks_for(rows, kWarpsPerBlock), kThreads, 0, stream_of(stream)>>>(
      ptr<float>(x), ptr<float>(dout), rows, x.dim(1), ptr<float>(dx));
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
