// bf16 and f16 conversion, round-to-nearest-even, NaN preserved (quiet), overflow to infinity.
// Host code; the CUDA backend uses the hardware conversions, which round the same way. The bf16
// pair is inline: it sits in every inner loop of the CPU backend's bf16 ops.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace moe {

inline bf16_t float_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((bits >> 16) | 0x0040u)};
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);  // ties go to the even result
  return {static_cast<uint16_t>((bits + rounding) >> 16)};
}

inline float bf16_to_float(bf16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value.bits) << 16;
  float result;
  std::memcpy(&result, &bits, 4);
  return result;
}

f16_t float_to_f16(float value);
float f16_to_float(f16_t value);

}  // namespace moe
