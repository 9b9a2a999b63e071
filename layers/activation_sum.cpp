#include "layers/activation_sum.h"

#include "kernels/ops.h"

namespace moe {

static Tensor widened(const Tensor& x, Stream& stream) {
  Tensor wide = Tensor::empty(x.shape(), DType::f32, x.device());
  ops::convert(x, wide, stream);
  return wide;
}

void all_reduce_activations(Communicator* group, Tensor& x, Stream& stream) {
  if (group_size(group) == 1) return;
  if (x.dtype() != DType::bf16) return group->all_reduce(x, ReduceOp::sum, stream);
  Tensor wide = widened(x, stream);
  group->all_reduce(wide, ReduceOp::sum, stream);
  ops::convert(wide, x, stream);
}

void reduce_scatter_activations(Communicator& group, const Tensor& in, Tensor& out,
                                Stream& stream) {
  if (in.dtype() != DType::bf16) return group.reduce_scatter(in, out, ReduceOp::sum, stream);
  Tensor wide_out = Tensor::empty(out.shape(), DType::f32, out.device());
  group.reduce_scatter(widened(in, stream), wide_out, ReduceOp::sum, stream);
  ops::convert(wide_out, out, stream);
}

}  // namespace moe
