// TEMPORARY STUB (replaced before commit)
#include "kernels/cpu/cpu_ops.h"

namespace moe::cpu {

void moe_sort_by_expert(const Tensor& expert_ids, int num_experts, Tensor& sorted_slots, Tensor& counts, Stream& stream) {
  MOE_THROW(InternalError, "moe_sort_by_expert not implemented yet");
}

void moe_permute(const Tensor& x, const Tensor& sorted_slots, int k, Tensor& out, Stream& stream) {
  MOE_THROW(InternalError, "moe_permute not implemented yet");
}

void moe_permute_backward(const Tensor& dout, const Tensor& sorted_slots, int k, Tensor& dx, Stream& stream) {
  MOE_THROW(InternalError, "moe_permute_backward not implemented yet");
}

void moe_unpermute(const Tensor& y, const Tensor& sorted_slots, Tensor& y_slots, Stream& stream) {
  MOE_THROW(InternalError, "moe_unpermute not implemented yet");
}

void moe_unpermute_backward(const Tensor& dy_slots, const Tensor& sorted_slots, Tensor& dy, Stream& stream) {
  MOE_THROW(InternalError, "moe_unpermute_backward not implemented yet");
}

void moe_combine(const Tensor& y_slots, const Tensor& probs, Tensor& out, Stream& stream) {
  MOE_THROW(InternalError, "moe_combine not implemented yet");
}

void moe_combine_backward(const Tensor& dout, const Tensor& y_slots, const Tensor& probs, Tensor& dy_slots, Tensor& dprobs, Stream& stream) {
  MOE_THROW(InternalError, "moe_combine_backward not implemented yet");
}

}  // namespace moe::cpu
