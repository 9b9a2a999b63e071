#include "kernels/op_checks.h"

namespace moe::ops {

void expect_defined(const char* op, const char* arg, const Tensor& t) {
  MOE_CHECK(t.defined(), op, ": argument '", arg, "' is an undefined tensor");
}

void expect_shape(const char* op, const char* arg, const Tensor& t, const Shape& expected) {
  expect_defined(op, arg, t);
  MOE_CHECK(t.shape() == expected, op, ": argument '", arg, "' has shape ", t.shape().str(),
            ", expected ", expected.str());
}

void expect_ndim(const char* op, const char* arg, const Tensor& t, int ndim) {
  expect_defined(op, arg, t);
  MOE_CHECK(t.ndim() == ndim, op, ": argument '", arg, "' has shape ", t.shape().str(),
            ", expected ", ndim, " dims");
}

void expect_dtype(const char* op, const char* arg, const Tensor& t, DType dtype) {
  MOE_CHECK(t.dtype() == dtype, op, ": argument '", arg, "' has dtype ", dtype_name(t.dtype()),
            ", expected ", dtype_name(dtype));
}

void expect_float(const char* op, const char* arg, const Tensor& t) {
  MOE_CHECK(is_floating(t.dtype()), op, ": argument '", arg, "' has dtype ", dtype_name(t.dtype()),
            ", expected a float dtype");
}

void expect_same_device_and_float_dtype(const char* op,
                                        std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  const Tensor* first_float = nullptr;
  for (const Tensor* t : tensors) {
    MOE_CHECK(t->defined(), op, ": an argument is an undefined tensor");
    if (!first) first = t;
    MOE_CHECK(t->device() == first->device(), op, ": tensors on different devices (",
              first->device().str(), " and ", t->device().str(), ")");
    if (!is_floating(t->dtype())) continue;
    if (!first_float) first_float = t;
    MOE_CHECK(t->dtype() == first_float->dtype(), op, ": float tensors of different dtypes (",
              dtype_name(first_float->dtype()), " and ", dtype_name(t->dtype()), ")");
  }
}

void expect_activation_dtype_or_f32(const char* op, const char* arg, const Tensor& t,
                                    const Tensor& activation) {
  expect_defined(op, arg, t);
  MOE_CHECK(t.device() == activation.device(), op, ": argument '", arg, "' is on ",
            t.device().str(), ", the activations on ", activation.device().str());
  const bool widened = activation.dtype() == DType::bf16 && t.dtype() == DType::f32;
  MOE_CHECK(t.dtype() == activation.dtype() || widened, op, ": argument '", arg, "' has dtype ",
            dtype_name(t.dtype()), ", expected ", dtype_name(activation.dtype()),
            activation.dtype() == DType::bf16 ? " or f32" : "");
}

}  // namespace moe::ops
