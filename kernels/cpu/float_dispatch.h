// Runs a kernel body templated on the element type, for the float dtypes the CPU backend computes
// in (f32, f64). Anything else is an InputError naming the op.
#pragma once

#include "core/error.h"
#include "core/tensor.h"

namespace moe::cpu {

template <typename Body>
void float_dispatch(DType dtype, const char* op, Body&& body) {
  switch (dtype) {
    case DType::f32:
      body.template operator()<float>();
      return;
    case DType::f64:
      body.template operator()<double>();
      return;
    default:
      MOE_THROW(InputError, op, ": dtype ", dtype_name(dtype),
                " is not supported on cpu (supported: f32, f64)");
  }
}

}  // namespace moe::cpu
