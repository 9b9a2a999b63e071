// Comparing tensors in tests: |got - expected| <= atol + rtol * |expected| elementwise. On failure
// the message names the worst element (the one using most of its tolerance), its index and both
// values.
#pragma once

#include <gtest/gtest.h>

#include "core/tensor.h"

namespace moe::testing {

// Host f32/f64/i32/i64 tensors of equal shape (dtypes may differ: values are read as double).
::testing::AssertionResult all_close(const Tensor& got, const Tensor& expected, double atol,
                                     double rtol);

double element_as_double(const Tensor& t, int64_t index);

}  // namespace moe::testing
