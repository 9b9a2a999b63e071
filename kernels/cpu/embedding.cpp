// Token embedding on the CPU: a row gather forward and a row scatter-add backward. The backward
// runs serially over tokens because two tokens with the same id add into the same row; it is
// memory-bound and small next to the GEMMs.
#include <cstring>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

static void check_ids(const char* op, const Tensor& ids, int64_t vocab) {
  const int32_t* p = ids.data<int32_t>();
  for (int64_t n = 0; n < ids.numel(); ++n)
    MOE_CHECK(p[n] >= 0 && p[n] < vocab, op, ": token id ", p[n], " at position ", n,
              " is outside the vocabulary [0, ", vocab, ")");
}

void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out, Stream&) {
  const int64_t vocab = table.dim(0), width = table.dim(1);
  check_ids("embedding_forward", ids, vocab);
  const int32_t* p = ids.data<int32_t>();
  float_dispatch(table.dtype(), "embedding_forward", [&]<typename T>() {
    const T* rows = table.data<T>();
    T* dst = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < ids.numel(); ++n)
      std::memcpy(dst + n * width, rows + p[n] * width, width * sizeof(T));
  });
}

void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable, Stream&) {
  const int64_t vocab = dtable.dim(0), width = dtable.dim(1);
  check_ids("embedding_backward", ids, vocab);
  const int32_t* p = ids.data<int32_t>();
  float_dispatch(dtable.dtype(), "embedding_backward", [&]<typename T>() {
    const T* src = dout.data<T>();
    T* rows = dtable.data<T>();
    for (int64_t n = 0; n < ids.numel(); ++n)
      for (int64_t d = 0; d < width; ++d) rows[p[n] * width + d] += src[n * width + d];
  });
}

}  // namespace moe::cpu
