// The CPU backend: the reference implementation of every op and the oracle of the CUDA tests.
// Plain loops, OpenMP over rows, cblas for GEMM; f32 and f64, and bf16 storage computed in f32
// with the CUDA kernels' rounding points (each file's header names them; float_dispatch.h). The
// router, router losses, capacity and AdamW stay f32/f64. Arguments arrive validated by
// dispatch.cpp, so kernels only assert what they rely on.
#pragma once

#include <vector>

#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/op_types.h"

namespace moe::cpu {

using ops::AdamWOptions;
using ops::DropPolicy;
using ops::RouterScore;
using ops::RouterTopkOptions;

#include "kernels/op_signatures.inc"

}  // namespace moe::cpu
