#include "core/half.h"

#include <cstring>

namespace moe {

static uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

static float bits_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

f16_t float_to_f16(float value) {
  const uint32_t bits = float_bits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return {static_cast<uint16_t>(sign | 0x7e00u)};   // NaN
  if (abs >= 0x477ff000u) return {static_cast<uint16_t>(sign | 0x7c00u)};  // rounds past 65504: inf
  if (abs < 0x38800000u) {
    // Below the smallest normal f16 (2^-14): a subnormal or zero. Shift the full mantissa into
    // place and round the dropped bits to nearest even.
    if (abs < 0x33000000u) return {sign};  // below half the smallest subnormal: +-0
    const uint32_t exponent = abs >> 23;
    const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exponent;  // value / 2^-24 = mantissa * 2^(exponent - 126)
    uint32_t result = mantissa >> shift;
    const uint32_t dropped = mantissa & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (dropped > half || (dropped == half && (result & 1u))) ++result;
    return {static_cast<uint16_t>(sign | result)};
  }
  const uint32_t rounding = 0xfffu + ((abs >> 13) & 1u);
  const uint32_t rebased = abs - (112u << 23);  // exponent bias 127 -> 15
  return {static_cast<uint16_t>(sign | ((rebased + rounding) >> 13))};
}

float f16_to_float(f16_t value) {
  const uint32_t sign = static_cast<uint32_t>(value.bits & 0x8000u) << 16;
  const uint32_t exponent = (value.bits >> 10) & 0x1fu;
  const uint32_t mantissa = value.bits & 0x3ffu;
  if (exponent == 0x1f) return bits_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;  // 2^-24
    return sign ? -magnitude : magnitude;
  }
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

}  // namespace moe
