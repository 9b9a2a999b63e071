// Element types. f32/bf16/f16/i32/i64 are the training types of DESIGN.md; f64 exists for the CPU
// backend only, so that every op's gradient can be checked by finite differences in double
// precision against the very same kernel code (kernels are templated over the float type).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moe {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
DType dtype_from_name(const std::string& name);  // throws InputError naming the valid names
bool is_floating(DType dtype);
// Mixed precision: the dtype of the statistics (rstd, lse), logits and accumulated outputs (weight
// gradients) that go with activations of `activation`: f32 for the 16-bit types, else itself.
DType accumulation_dtype(DType activation);

// 16-bit float storage types: plain bit patterns; conversion lives in core/half.h.
struct bf16_t {
  uint16_t bits;
};
struct f16_t {
  uint16_t bits;
};

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<bf16_t>() {
  return DType::bf16;
}
template <>
constexpr DType dtype_of<f16_t>() {
  return DType::f16;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::i64;
}

}  // namespace moe
