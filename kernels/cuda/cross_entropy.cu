// Fused softmax cross-entropy on CUDA, one vocabulary shard (the semantics are the CPU reference's,
// kernels/cpu/cross_entropy.cpp). logits are f32 or bf16; target_logits and lse are f32 always.
// - Forward: one block per row (grid-stride over rows), a single read of the row. Each thread keeps
//   an online (max, sum of exp(x - max)) pair over its columns; the pairs are merged through a
//   fixed-shape block reduction, so the result is deterministic. -inf logits (masked classes)
//   contribute nothing; a NaN logit makes the row's lse NaN, as on the CPU.
// - Backward: one block per row, dlogits recomputed from the saved lse (assigned; zero on ignored
//   rows).
// bf16 logits (as kernels/cpu/cross_entropy.cpp): lse and target_logits are f32 (the target logit
// widened exactly), each dlogits element rounded once; lse and dlogits are f32 arithmetic here
// where the CPU uses double. f32 logits (the bf16 recipe's LM head) give f32 dlogits.
// A target outside this shard (or negative and not ignore_index) has no column here: target logit 0
// and no one-hot term, so a bad target never indexes memory.
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"

namespace moe::cuda {

namespace {

struct MaxSum {
  float max;  // the largest value seen
  float sum;  // sum of exp(x - max) over the values seen
};

__device__ __forceinline__ void online_add(MaxSum& acc, float x) {
  if (x > acc.max) {
    acc.sum = acc.sum * expf(acc.max - x) + 1.0f;
    acc.max = x;
  } else if (x != -INFINITY) {  // also when acc.max is -inf: exp(-inf - -inf) would be NaN
    acc.sum += expf(x - acc.max);
  }
}

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  const float max = fmaxf(a.max, b.max);
  if (max == -INFINITY) return {max, a.sum + b.sum};
  return {max, a.sum * expf(a.max - max) + b.sum * expf(b.max - max)};
}

__device__ __forceinline__ MaxSum warp_merge(MaxSum value) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const MaxSum other{__shfl_xor_sync(0xffffffffu, value.max, offset),
                       __shfl_xor_sync(0xffffffffu, value.sum, offset)};
    value = merge(value, other);
  }
  return value;
}

// The target's column in this shard, or -1 when the row is ignored or its target lies elsewhere.
__device__ __forceinline__ int64_t shard_column(int32_t target, int ignore_index,
                                                int64_t vocab_start, int64_t vocab) {
  const int64_t column = static_cast<int64_t>(target) - vocab_start;
  return target != ignore_index && column >= 0 && column < vocab ? column : -1;
}

template <typename T>
__global__ void cross_entropy_forward_kernel(const T* logits, const int32_t* targets, int64_t rows,
                                             int64_t vocab, int ignore_index, int64_t vocab_start,
                                             float* target_logits, float* lse) {
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    const T* row = logits + n * vocab;
    MaxSum acc{-INFINITY, 0.0f};
    for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) online_add(acc, to_float(row[v]));
    acc = block_reduce(acc, MaxSum{-INFINITY, 0.0f}, [](MaxSum m) { return warp_merge(m); });
    if (threadIdx.x == 0) {
      lse[n] = acc.max + logf(acc.sum);
      const int64_t column = shard_column(targets[n], ignore_index, vocab_start, vocab);
      target_logits[n] = column < 0 ? 0.0f : to_float(row[column]);
    }
  }
}

template <typename T>
__global__ void cross_entropy_backward_kernel(const T* logits, const int32_t* targets,
                                              const float* lse, int64_t rows, int64_t vocab,
                                              int ignore_index, int64_t vocab_start,
                                              float grad_scale, T* dlogits) {
  for (int64_t n = blockIdx.x; n < rows; n += gridDim.x) {
    const T* row = logits + n * vocab;
    T* drow = dlogits + n * vocab;
    const int32_t target = targets[n];
    if (target == ignore_index) {
      for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) drow[v] = from_float<T>(0.0f);
      continue;
    }
    const float row_lse = lse[n];
    const int64_t column = shard_column(target, ignore_index, vocab_start, vocab);
    for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
      const float prob = expf(to_float(row[v]) - row_lse);
      drow[v] = from_float<T>(grad_scale * (prob - (v == column ? 1.0f : 0.0f)));
    }
  }
}

void expect_f32(const char* op, const char* arg, const Tensor& t) {
  MOE_CHECK(t.dtype() == DType::f32, op, ": argument '", arg, "' has dtype ", dtype_name(t.dtype()),
            ", expected f32 on cuda (saved statistics are f32)");
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int ignore_index,
                           int64_t vocab_start, Tensor& target_logits, Tensor& lse,
                           Stream& stream) {
  expect_f32("cross_entropy_forward", "target_logits", target_logits);
  expect_f32("cross_entropy_forward", "lse", lse);
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  if (rows == 0) return;
  use_device(logits);
  float_dispatch(logits.dtype(), "cross_entropy_forward", [&]<typename T>() {
    cross_entropy_forward_kernel<T><<<blocks_for(rows, 1), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(logits), ptr<int32_t>(targets), rows, vocab, ignore_index, vocab_start,
        ptr<float>(target_logits), ptr<float>(lse));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            int ignore_index, int64_t vocab_start, float grad_scale,
                            Tensor& dlogits, Stream& stream) {
  expect_f32("cross_entropy_backward", "lse", lse);
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  if (rows == 0 || vocab == 0) return;
  use_device(logits);
  float_dispatch(logits.dtype(), "cross_entropy_backward", [&]<typename T>() {
    cross_entropy_backward_kernel<T><<<blocks_for(rows, 1), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(logits), ptr<int32_t>(targets), ptr<float>(lse), rows, vocab, ignore_index,
        vocab_start, grad_scale, ptr<T>(dlogits));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace moe::cuda
