// TEMPORARY STUB (replaced before commit)
#include "kernels/cpu/cpu_ops.h"

namespace moe::cpu {

void router_topk_forward(const Tensor& logits, const Tensor& bias, const RouterTopkOptions& options, Tensor& probs, Tensor& expert_ids, Tensor& scores, Stream& stream) {
  MOE_THROW(InternalError, "router_topk_forward not implemented yet");
}

void router_topk_backward(const Tensor& dprobs, const Tensor& expert_ids, const Tensor& scores, const RouterTopkOptions& options, Tensor& dlogits, Stream& stream) {
  MOE_THROW(InternalError, "router_topk_backward not implemented yet");
}

}  // namespace moe::cpu
