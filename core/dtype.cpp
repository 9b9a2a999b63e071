#include "core/dtype.h"

#include "core/error.h"

namespace moe {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::bf16:
      return 2;
    case DType::f16:
      return 2;
    case DType::i32:
      return 4;
    case DType::i64:
      return 8;
  }
  MOE_ASSERT(false, "unknown dtype ", static_cast<int>(dtype));
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::bf16:
      return "bf16";
    case DType::f16:
      return "f16";
    case DType::i32:
      return "i32";
    case DType::i64:
      return "i64";
  }
  MOE_ASSERT(false, "unknown dtype ", static_cast<int>(dtype));
}

DType dtype_from_name(const std::string& name) {
  for (DType d : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64})
    if (name == dtype_name(d)) return d;
  MOE_THROW(InputError, "unknown dtype '", name,
            "' (expected one of f32, f64, bf16, f16, i32, i64)");
}

bool is_floating(DType dtype) { return dtype != DType::i32 && dtype != DType::i64; }

DType accumulation_dtype(DType activation) {
  return activation == DType::bf16 || activation == DType::f16 ? DType::f32 : activation;
}

}  // namespace moe
