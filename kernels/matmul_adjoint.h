// matmul_backward as two matmuls, for every backend. For c = op(a) op(b):
//   dop(a) = dc op(b)^T  and  dop(b) = op(a)^T dc,
// and the transposes fold into the GEMM flags, so da and db come out in a's and b's own layout.
// Both accumulate (beta = 1). Matmul is the backend's matmul function.
#pragma once

#include "core/stream.h"
#include "core/tensor.h"

namespace moe::ops {

template <typename Matmul>
void matmul_adjoint(Matmul matmul, const Tensor& a, const Tensor& b, const Tensor& dc, Tensor* da,
                    Tensor* db, bool trans_a, bool trans_b, Stream& stream) {
  if (da) {
    if (!trans_a)
      matmul(dc, b, *da, false, !trans_b, 1.0f, 1.0f, stream);
    else
      matmul(b, dc, *da, trans_b, true, 1.0f, 1.0f, stream);
  }
  if (db) {
    if (!trans_b)
      matmul(a, dc, *db, !trans_a, false, 1.0f, 1.0f, stream);
    else
      matmul(dc, a, *db, true, trans_a, 1.0f, 1.0f, stream);
  }
}

}  // namespace moe::ops
