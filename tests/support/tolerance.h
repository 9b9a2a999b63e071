// Comparing tensors in tests: |got - expected| <= atol + rtol * |expected| elementwise. On failure
// the message names the worst element (the one using most of its tolerance), its index and both
// values.
#pragma once

#include <gtest/gtest.h>

#include "core/tensor.h"

namespace moe::testing {

// Host f32/f64/bf16/i32/i64 tensors of equal shape (dtypes may differ: values are read as double).
::testing::AssertionResult all_close(const Tensor& got, const Tensor& expected, double atol,
                                     double rtol);

double element_as_double(const Tensor& t, int64_t index);

// The Euclidean distance between two host tensors of equal size (normwise comparisons, such as a
// gradient's distance from a reference measured against bf16's own effect).
double distance(const Tensor& a, const Tensor& b);

struct Tolerance {
  double atol, rtol;
};

// How far a CPU bf16 op may be from its f64 reference run on the same (bf16-exact) inputs, as
// all_close's atol and rtol. The standard rounding model, fl(x op y) = (x op y)(1 + d), |d| <= u:
// - the output rounds once to bf16 (u = 2^-8, 8 significand bits, round to nearest even):
//   |fl(y') - y'| <= u |y'|, hence rtol = u;
// - the value y' that rounds was computed in f32 (u32 = 2^-24) by at most f32_ops operations
//   along its longest dependency chain (a length-n reduction counts n; a libm call, accurate to
//   within an ulp, counts 1): |y' - y| <= gamma_n * magnitude, gamma_n = n u32 / (1 - n u32) <=
//   2 n u32 (n u32 <= 1/2), where magnitude bounds the sum of the absolute values of the terms
//   (for a dot product, sum |a_i b_i|; for an elementwise op, |y|).
// Together |fl(y') - y| <= u |y| + (1 + u) gamma_n magnitude. The CPU ops round only their
// outputs to bf16, so no intermediate rounding enters the bound.
Tolerance bf16_tolerance(int64_t f32_ops, double magnitude);

// How far a CPU f32 op may be from its f64 reference on the same (f32-exact) inputs: the same
// model without the bf16 rounding, |y' - y| <= gamma_n magnitude, as atol = gamma_n magnitude.
// rtol = gamma_n as well, for the elementwise outputs whose magnitude is |y| itself. A fast exp
// (kernels/cpu/fast_math.h, within 2 ulp) counts 2 operations.
Tolerance f32_tolerance(int64_t f32_ops, double magnitude);

}  // namespace moe::testing
