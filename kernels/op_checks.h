// Argument checks shared by the op API: each throws InputError naming the op, the argument, what it
// got and what was expected.
#pragma once

#include <initializer_list>

#include "core/tensor.h"

namespace moe::ops {

void expect_defined(const char* op, const char* arg, const Tensor& t);
void expect_shape(const char* op, const char* arg, const Tensor& t, const Shape& expected);
void expect_ndim(const char* op, const char* arg, const Tensor& t, int ndim);
void expect_dtype(const char* op, const char* arg, const Tensor& t, DType dtype);
void expect_float(const char* op, const char* arg, const Tensor& t);
// All tensors on the same device and, for the float ones, of the same dtype as the first.
void expect_same_device_and_float_dtype(const char* op,
                                        std::initializer_list<const Tensor*> tensors);

// Mixed precision: an output that accumulates or keeps statistics (a weight gradient, a matmul
// result, rstd, lse) may be f32 while the activations are bf16, on either backend. For f32 or f64
// activations it must have the activation dtype. Also checks the device.
void expect_activation_dtype_or_f32(const char* op, const char* arg, const Tensor& t,
                                    const Tensor& activation);

}  // namespace moe::ops
