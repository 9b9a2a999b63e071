// Checking a CPU bf16 op, the oracle of the CUDA bf16 kernels, from two sides at once. The test
// runs the op three times on the same values (bf16-exact inputs, converted to the run's dtype):
// - in bf16 and in f32: a CPU op computes bf16 with the f32 path's own arithmetic and rounds where
//   its header says, so an op that rounds only its outputs gives, bit for bit, the f32 run's
//   outputs rounded to bf16 (an output kept in f32, such as rstd, equals the f32 run's exactly);
// - in f64: the bf16 outputs are within bf16_tolerance (tolerance.h) of the exact answer.
// The ops whose f32 path has its own vectorised arithmetic (float_dispatch.h's fast_f32_dispatch)
// no longer share it with bf16: their bf16 is checked against f64 only (bf16_matches_f64), and
// their f32 path against f64 within f32_tolerance (f32_matches_f64).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/tensor.h"

namespace moe::testing {

// The dtype of statistics and accumulators next to activations of `activation` dtype: f32 for
// bf16, the activation dtype otherwise.
DType statistics_dtype(DType activation);

// One output of the op: its name, the f32 operations on its longest path and the magnitude that
// bounds its terms (bf16_tolerance's arguments).
struct Bf16Output {
  std::string name;
  int64_t f32_ops;
  double magnitude;
};

// run(dtype) runs the op with its float inputs in dtype and returns its outputs (host tensors, in
// the order of `outputs`).
using PrecisionRun = std::function<std::vector<Tensor>(DType dtype)>;

::testing::AssertionResult bf16_rounds_f32_and_matches_f64(const PrecisionRun& run,
                                                           const std::vector<Bf16Output>& outputs);
// The f64 side alone (runs bf16 and f64), for an op whose f32 path is a different algorithm from
// its bf16 arithmetic (the fast f32 paths), so that the bf16 outputs are not the f32 run's rounded.
::testing::AssertionResult bf16_matches_f64(const PrecisionRun& run,
                                            const std::vector<Bf16Output>& outputs);
// The f32 run's outputs within f32_tolerance(f32_ops, magnitude) of the f64 run's.
::testing::AssertionResult f32_matches_f64(const PrecisionRun& run,
                                           const std::vector<Bf16Output>& outputs);

}  // namespace moe::testing
