// Token permutation by expert on CUDA, with the CPU reference's semantics
// (kernels/cpu/moe_permute.cpp). Activations are f32 or bf16; probs and dprobs are f32 (router
// outputs) whatever the activation dtype.
// - moe_sort_by_expert: one kernel writes the sort keys (the expert id; an id outside [0, E) gets
//   the key E, so it sorts after every expert and is not counted) and the slot indices, and counts
//   each block's slots per expert in shared memory before adding them to counts (integer atomics:
//   exact). A CUB radix sort of (key, slot) pairs over the key's ceil(log2(E + 1)) bits (one
//   onesweep pass for E < 256, two up to kMaxExperts) then lists the slots; it is stable, so each
//   expert keeps token order. Scratch: three i32[N*k] and CUB's temporary storage.
// - Two row movers serve the four permute ops, as on the CPU: gather_rows (out[r] =
//   src[slot_r / k], a zero row for a slot outside [0, rows * k)) for moe_permute and
//   moe_unpermute_backward, and sum_slot_rows for moe_permute_backward and moe_unpermute. The
//   latter gathers rather than scatters: an i32 inverse map (slot -> its row in sorted_slots, -1
//   when not listed) is built first, then dst[n] = sum over its k slots of the listed rows, in slot
//   order, in f32, rounded once: every dst row is written once (unlisted slots add nothing, so
//   dropped slots stay zero), and no float atomics. A slot listed twice (sort and capacity never do
//   that) counts once, from its last row (atomicMax, so still deterministic).
// - moe_combine: one block per token, threads over the width. moe_combine_backward: one block per
//   slot; the dot product for dprobs is a fixed-shape f32 block reduction (deterministic).
// bf16 rounding points (as kernels/cpu/moe_permute.cpp): row moves copy; sum_slot_rows adds a
// token's rows in f32 in increasing row order, the CPU scatter's, and rounds once; moe_combine sums
// p * y in f32 in slot order without fused multiply-adds and rounds once; dy_slots = p * dout is
// rounded once. All of these are the CPU's bits exactly. dprobs is an f32 block reduction where the
// CPU sums in double.
#include <algorithm>
#include <cstdint>

#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"

namespace moe::cuda {

namespace {

constexpr unsigned kMaxCountBlocks = 1024;  // few enough that the per-block count flush is cheap
constexpr int kMaxExperts = 4096;           // the per-block counts live in shared memory

__global__ void sort_keys_kernel(const int32_t* ids, int64_t slots, int experts, int32_t* keys,
                                 int32_t* values, int64_t* counts) {
  extern __shared__ int block_counts[];
  for (int e = threadIdx.x; e < experts; e += blockDim.x) block_counts[e] = 0;
  __syncthreads();
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < slots;
       s += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t id = ids[s];
    const bool valid = id >= 0 && id < experts;
    keys[s] = valid ? id : experts;
    values[s] = static_cast<int32_t>(s);
    if (valid) atomicAdd(&block_counts[id], 1);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < experts; e += blockDim.x)
    if (block_counts[e] > 0)
      atomicAdd(reinterpret_cast<unsigned long long*>(counts + e),
                static_cast<unsigned long long>(block_counts[e]));
}

template <typename T>
__global__ void gather_rows_kernel(const T* src, const int32_t* slots, int64_t rows, int k,
                                   int64_t num_slots, int64_t width, T* out) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int32_t slot = slots[r];
    const bool valid = slot >= 0 && slot < num_slots;
    const T* from = src + (valid ? slot / k : 0) * width;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x)
      out[r * width + c] = valid ? from[c] : from_float<T>(0.0f);
  }
}

__global__ void invert_slots_kernel(const int32_t* slots, int64_t rows, int64_t num_slots,
                                    int32_t* inverse) {
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t slot = slots[r];
    if (slot >= 0 && slot < num_slots) atomicMax(inverse + slot, static_cast<int32_t>(r));
  }
}

// dst[n] = sum of src[inverse[n * k + j]] over j < k, the slots with inverse -1 left out, added in
// increasing row order (the CPU scatter's). A block sorts its token's k rows in shared memory
// (dynamic, k entries) once, and its threads then sum every column in that order.
template <typename T>
__global__ void sum_slot_rows_kernel(const T* src, const int32_t* inverse, int64_t tokens, int k,
                                     int64_t width, T* dst) {
  extern __shared__ int32_t token_rows[];
  for (int64_t n = blockIdx.x; n < tokens; n += gridDim.x) {
    __syncthreads();  // the previous token's rows are no longer read
    if (threadIdx.x == 0)
      for (int j = 0; j < k; ++j) {  // insertion sort: k is small
        const int32_t r = inverse[n * k + j];
        int i = j;
        for (; i > 0 && token_rows[i - 1] > r; --i) token_rows[i] = token_rows[i - 1];
        token_rows[i] = r;
      }
    __syncthreads();
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
      float sum = 0.0f;
      for (int j = 0; j < k; ++j) {
        const int32_t r = token_rows[j];
        if (r >= 0) sum += to_float(src[r * width + c]);
      }
      dst[n * width + c] = from_float<T>(sum);
    }
  }
}

template <typename T>
__global__ void combine_kernel(const T* y_slots, const float* probs, int64_t tokens, int k,
                               int64_t width, T* out) {
  for (int64_t n = blockIdx.x; n < tokens; n += gridDim.x)
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
      float sum = 0.0f;
      for (int j = 0; j < k; ++j)  // no fused multiply-add: the CPU's two roundings
        sum =
            __fadd_rn(sum, __fmul_rn(probs[n * k + j], to_float(y_slots[(n * k + j) * width + c])));
      out[n * width + c] = from_float<T>(sum);
    }
}

template <typename T>
__global__ void combine_backward_kernel(const T* dout, const T* y_slots, const float* probs,
                                        int64_t slots, int k, int64_t width, T* dy_slots,
                                        float* dprobs) {
  for (int64_t slot = blockIdx.x; slot < slots; slot += gridDim.x) {
    const T* d = dout + (slot / k) * width;
    const float p = probs[slot];
    float dot = 0.0f;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
      const float dc = to_float(d[c]);
      dy_slots[slot * width + c] = from_float<T>(p * dc);
      dot += dc * to_float(y_slots[slot * width + c]);
    }
    dot = block_sum(dot);
    if (threadIdx.x == 0) dprobs[slot] = dot;
  }
}

void expect_f32(const char* op, const char* arg, const Tensor& t) {
  MOE_CHECK(t.dtype() == DType::f32, op, ": argument '", arg, "' has dtype ", dtype_name(t.dtype()),
            ", expected f32 on cuda (router outputs are f32)");
}

void gather_rows(const char* op, const Tensor& src, const Tensor& sorted_slots, int k, Tensor& out,
                 Stream& stream) {
  const int64_t rows = sorted_slots.numel(), width = src.dim(1);
  if (rows == 0 || width == 0) return;
  use_device(src);
  float_dispatch(src.dtype(), op, [&]<typename T>() {
    gather_rows_kernel<T><<<blocks_for(rows, 1), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(src), ptr<int32_t>(sorted_slots), rows, k, src.dim(0) * k, width, ptr<T>(out));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void sum_slot_rows(const char* op, const Tensor& src, const Tensor& sorted_slots, int k,
                   Tensor& dst, Stream& stream) {
  const int64_t tokens = dst.dim(0), width = dst.dim(1), rows = sorted_slots.numel();
  if (tokens == 0 || width == 0) return;
  use_device(dst);
  const cudaStream_t s = stream_of(stream);
  Tensor inverse = Tensor::empty({tokens * k}, DType::i32, dst.device());
  MOE_CUDA_CHECK(cudaMemsetAsync(inverse.raw(), 0xff, inverse.nbytes(), s));  // every entry -1
  if (rows > 0) {
    invert_slots_kernel<<<blocks_for(rows), kThreads, 0, s>>>(ptr<int32_t>(sorted_slots), rows,
                                                              tokens * k, ptr<int32_t>(inverse));
    MOE_CUDA_CHECK_LAUNCH();
  }
  float_dispatch(dst.dtype(), op, [&]<typename T>() {
    sum_slot_rows_kernel<T><<<blocks_for(tokens, 1), kThreads, k * sizeof(int32_t), s>>>(
        ptr<T>(src), ptr<int32_t>(inverse), tokens, k, width, ptr<T>(dst));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void moe_sort_by_expert(const Tensor& expert_ids, int num_experts, Tensor& sorted_slots,
                        Tensor& counts, Stream& stream) {
  const int64_t slots = expert_ids.numel();
  MOE_CHECK(slots <= INT32_MAX, "moe_sort_by_expert: ", slots,
            " slots, at most 2^31 - 1 supported on cuda");
  MOE_CHECK(num_experts <= kMaxExperts, "moe_sort_by_expert: ", num_experts, " experts, at most ",
            kMaxExperts, " supported on cuda");
  use_device(expert_ids);
  const cudaStream_t s = stream_of(stream);
  const Device device = expert_ids.device();
  MOE_CUDA_CHECK(cudaMemsetAsync(counts.raw(), 0, counts.nbytes(), s));
  if (slots == 0) return;
  Tensor keys = Tensor::empty({slots}, DType::i32, device);
  Tensor sorted_keys = Tensor::empty({slots}, DType::i32, device);
  Tensor values = Tensor::empty({slots}, DType::i32, device);
  sort_keys_kernel<<<std::min(blocks_for(slots), kMaxCountBlocks), kThreads,
                     num_experts * sizeof(int), s>>>(ptr<int32_t>(expert_ids), slots, num_experts,
                                                     ptr<int32_t>(keys), ptr<int32_t>(values),
                                                     ptr<int64_t>(counts));
  MOE_CUDA_CHECK_LAUNCH();

  int key_bits = 0;  // keys are in [0, num_experts]
  while ((1 << key_bits) <= num_experts) ++key_bits;
  const auto sort = [&](void* temp, size_t& temp_bytes) {
    MOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        temp, temp_bytes, ptr<int32_t>(keys), ptr<int32_t>(sorted_keys), ptr<int32_t>(values),
        ptr<int32_t>(sorted_slots), static_cast<int>(slots), 0, key_bits, s));
  };
  size_t temp_bytes = 0;
  sort(nullptr, temp_bytes);  // asks for the temporary storage size only
  Tensor temp = Tensor::empty({static_cast<int64_t>(temp_bytes / 8 + 1)}, DType::i64, device);
  sort(temp.raw(), temp_bytes);
}

void moe_permute(const Tensor& x, const Tensor& sorted_slots, int k, Tensor& out, Stream& stream) {
  gather_rows("moe_permute", x, sorted_slots, k, out, stream);
}

void moe_permute_backward(const Tensor& dout, const Tensor& sorted_slots, int k, Tensor& dx,
                          Stream& stream) {
  sum_slot_rows("moe_permute_backward", dout, sorted_slots, k, dx, stream);
}

void moe_unpermute(const Tensor& y, const Tensor& sorted_slots, Tensor& y_slots, Stream& stream) {
  sum_slot_rows("moe_unpermute", y, sorted_slots, 1, y_slots, stream);
}

void moe_unpermute_backward(const Tensor& dy_slots, const Tensor& sorted_slots, Tensor& dy,
                            Stream& stream) {
  gather_rows("moe_unpermute_backward", dy_slots, sorted_slots, 1, dy, stream);
}

void moe_combine(const Tensor& y_slots, const Tensor& probs, Tensor& out, Stream& stream) {
  expect_f32("moe_combine", "probs", probs);
  const int64_t tokens = out.dim(0), width = out.dim(1);
  if (tokens == 0 || width == 0) return;
  use_device(out);
  float_dispatch(out.dtype(), "moe_combine", [&]<typename T>() {
    combine_kernel<T><<<blocks_for(tokens, 1), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(y_slots), ptr<float>(probs), tokens, static_cast<int>(probs.dim(1)), width,
        ptr<T>(out));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void moe_combine_backward(const Tensor& dout, const Tensor& y_slots, const Tensor& probs,
                          Tensor& dy_slots, Tensor& dprobs, Stream& stream) {
  expect_f32("moe_combine_backward", "probs", probs);
  expect_f32("moe_combine_backward", "dprobs", dprobs);
  const int64_t slots = probs.numel();
  if (slots == 0) return;
  use_device(dout);
  float_dispatch(dout.dtype(), "moe_combine_backward", [&]<typename T>() {
    combine_backward_kernel<T><<<blocks_for(slots, 1), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(dout), ptr<T>(y_slots), ptr<float>(probs), slots, static_cast<int>(probs.dim(1)),
        dout.dim(1), ptr<T>(dy_slots), ptr<float>(dprobs));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace moe::cuda
