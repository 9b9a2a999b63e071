// Token embedding on the CPU, on one vocabulary shard (vocab-parallel under tensor parallelism):
// the table holds the rows of ids [vocab_start, vocab_start + rows). Forward gathers the rows of
// the ids in the shard and writes zero rows for the others, so the shards' outputs sum to the full
// lookup; backward scatter-adds into the shard's rows and skips the others. The backward runs
// serially over tokens because two tokens with the same id add into the same row; it is
// memory-bound and small next to the GEMMs. Ids are checked (>= 0) in a serial pass before the
// OpenMP loop, because an exception must not leave a parallel region.
// bf16 (as kernels/cuda/embedding.cu): forward copies rows (no arithmetic, no rounding); backward
// accumulates every token's dout into its row in f32, in token order, and rounds a bf16 dtable
// once per call (an f32 dtable under bf16 dout never rounds to bf16).
#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

// The vocabulary's upper bound is the caller's to check; a shard only knows its own rows.
static void check_ids(const char* op, const Tensor& ids) {
  const int32_t* p = ids.data<int32_t>();
  for (int64_t n = 0; n < ids.numel(); ++n)
    MOE_CHECK(p[n] >= 0, op, ": token id ", p[n], " at position ", n, " is negative");
}

void embedding_forward(const Tensor& ids, const Tensor& table, int64_t vocab_start, Tensor& out,
                       Stream&) {
  const int64_t rows = table.dim(0), width = table.dim(1);
  check_ids("embedding_forward", ids);
  const int32_t* p = ids.data<int32_t>();
  storage_dispatch(table.dtype(), "embedding_forward", [&]<typename T>() {
    const T* src = table.data<T>();
    T* dst = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < ids.numel(); ++n) {
      const int64_t row = p[n] - vocab_start;
      if (row >= 0 && row < rows)
        std::memcpy(dst + n * width, src + row * width, width * sizeof(T));
      else
        std::fill_n(dst + n * width, width, narrow<T>(0.0f));
    }
  });
}

void embedding_backward(const Tensor& ids, const Tensor& dout, int64_t vocab_start, Tensor& dtable,
                        Stream&) {
  const int64_t rows = dtable.dim(0), width = dtable.dim(1);
  check_ids("embedding_backward", ids);
  const int32_t* p = ids.data<int32_t>();
  storage_dispatch(dtable.dtype(), "embedding_backward", [&]<typename W>() {
    Accumulator<W> acc(dtable, true);
    auto* dst = acc.data();
    storage_dispatch(dout.dtype(), "embedding_backward", [&]<typename T>() {
      const T* src = dout.data<T>();
      for (int64_t n = 0; n < ids.numel(); ++n) {
        const int64_t row = p[n] - vocab_start;
        if (row < 0 || row >= rows) continue;  // another shard's row
        for (int64_t d = 0; d < width; ++d) dst[row * width + d] += widen(src[n * width + d]);
      }
    });
    acc.round_into_output();
  });
}

}  // namespace moe::cpu
