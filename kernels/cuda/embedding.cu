// Token embedding on CUDA, on one vocabulary shard (see op_signatures.inc): the table holds the
// rows of ids [vocab_start, vocab_start + rows).
// - Forward: one block per token (grid-stride over tokens), threads over the width; a token whose
//   id is outside the shard (another rank's row, or a negative id) gets a zero row.
// - Backward is deterministic, without float atomics: a stable radix sort (CUB) of (id, token)
//   pairs groups the tokens of each id in token order; the blocks that hold the first token of a
//   run (one per chunk of columns) add the whole run's dout rows, in token order and in f32, into
//   the id's dtable row and round once. Ids outside the shard are skipped. dtable may be f32 or the
//   dout dtype.
// - Scratch (sorted ids and tokens, the sort's temporary storage) comes from Tensor::empty.
// bf16 rounding points (as kernels/cpu/embedding.cpp, bit for bit): forward copies; backward adds a
// row's tokens to its widened dtable value in f32, in token order (the CPU's order), and rounds a
// bf16 dtable once; an f32 dtable under bf16 dout never rounds to bf16.
#include <cstdint>
#include <limits>

#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/launch.cuh"

namespace moe::cuda {

namespace {

template <typename T>
__global__ void embedding_forward_kernel(const int32_t* ids, const T* table, int64_t vocab_start,
                                         int64_t rows, int64_t width, int64_t tokens, T* out) {
  for (int64_t n = blockIdx.x; n < tokens; n += gridDim.x) {
    const int64_t row = ids[n] - vocab_start;
    const bool in_shard = row >= 0 && row < rows;
    for (int64_t d = threadIdx.x; d < width; d += blockDim.x)
      out[n * width + d] = in_shard ? table[row * width + d] : from_float<T>(0.0f);
  }
}

__global__ void iota_kernel(int32_t* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = static_cast<int32_t>(i);
}

// Block (p, c) handles sorted position p, when it starts a run of equal ids, and the c-th chunk of
// blockDim.x columns, so that a frequent id's long run is still spread over many blocks.
template <typename T, typename W>
__global__ void embedding_backward_kernel(const int32_t* sorted_ids, const int32_t* sorted_tokens,
                                          int64_t tokens, const T* dout, int64_t vocab_start,
                                          int64_t rows, int64_t width, W* dtable) {
  const int64_t d = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (d >= width) return;
  for (int64_t p = blockIdx.x; p < tokens; p += gridDim.x) {
    const int32_t id = sorted_ids[p];
    if (p > 0 && sorted_ids[p - 1] == id) continue;
    const int64_t row = id - vocab_start;
    if (row < 0 || row >= rows) continue;  // another shard's row
    int64_t end = p + 1;
    while (end < tokens && sorted_ids[end] == id) ++end;
    float sum = to_float(dtable[row * width + d]);
    for (int64_t q = p; q < end; ++q)
      sum += to_float(dout[static_cast<int64_t>(sorted_tokens[q]) * width + d]);
    dtable[row * width + d] = from_float<W>(sum);
  }
}

}  // namespace

void embedding_forward(const Tensor& ids, const Tensor& table, int64_t vocab_start, Tensor& out,
                       Stream& stream) {
  const int64_t tokens = ids.numel(), rows = table.dim(0), width = table.dim(1);
  if (tokens == 0 || width == 0) return;
  use_device(table);
  float_dispatch(table.dtype(), "embedding_forward", [&]<typename T>() {
    embedding_forward_kernel<T><<<blocks_for(tokens, 1), kThreads, 0, stream_of(stream)>>>(
        ptr<int32_t>(ids), ptr<T>(table), vocab_start, rows, width, tokens, ptr<T>(out));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void embedding_backward(const Tensor& ids, const Tensor& dout, int64_t vocab_start, Tensor& dtable,
                        Stream& stream) {
  const int64_t tokens = ids.numel(), rows = dtable.dim(0), width = dtable.dim(1);
  if (tokens == 0 || width == 0) return;
  MOE_CHECK(tokens <= std::numeric_limits<int32_t>::max(), "embedding_backward: ", tokens,
            " tokens, at most 2^31 - 1 supported on cuda");
  use_device(dtable);
  const cudaStream_t s = stream_of(stream);
  const Device device = dtable.device();
  Tensor token_order = Tensor::empty({tokens}, DType::i32, device);
  Tensor sorted_ids = Tensor::empty({tokens}, DType::i32, device);
  Tensor sorted_tokens = Tensor::empty({tokens}, DType::i32, device);
  iota_kernel<<<blocks_for(tokens), kThreads, 0, s>>>(ptr<int32_t>(token_order), tokens);
  MOE_CUDA_CHECK_LAUNCH();

  const auto sort = [&](void* temp, size_t& temp_bytes) {
    MOE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        temp, temp_bytes, ptr<int32_t>(ids), ptr<int32_t>(sorted_ids), ptr<int32_t>(token_order),
        ptr<int32_t>(sorted_tokens), static_cast<int>(tokens), 0, 32, s));
  };
  size_t temp_bytes = 0;
  sort(nullptr, temp_bytes);  // asks for the temporary storage size only
  Tensor temp = Tensor::empty({static_cast<int64_t>(temp_bytes / 8 + 1)}, DType::i64, device);
  sort(temp.raw(), temp_bytes);

  float_dispatch(dtable.dtype(), "embedding_backward", [&]<typename W>() {
    float_dispatch(dout.dtype(), "embedding_backward", [&]<typename T>() {
      const dim3 grid(blocks_for(tokens, 1), blocks_for(width));
      embedding_backward_kernel<T, W>
          <<<grid, kThreads, 0, s>>>(ptr<int32_t>(sorted_ids), ptr<int32_t>(sorted_tokens), tokens,
                                     ptr<T>(dout), vocab_start, rows, width, ptr<W>(dtable));
      MOE_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace moe::cuda
