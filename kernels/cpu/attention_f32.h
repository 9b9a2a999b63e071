// The f32 path of the CPU attention kernels (attention_f32.cpp): kernels/cpu/attention.cpp hands
// f32 tensors here, with arguments validated as for every op, and bf16 ones widened to f32 once
// it has checked that their lse is f32.
#pragma once

#include "core/tensor.h"

namespace moe::cpu {

void attention_forward_f32(const Tensor& q, const Tensor& k, const Tensor& v, float softmax_scale,
                           Tensor& out, Tensor& lse);

void attention_backward_f32(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& out, const Tensor& lse, float softmax_scale, Tensor& dq,
                            Tensor& dk, Tensor& dv);

}  // namespace moe::cpu
