// The emulator's stand-in for <cuda_bf16.h>: __nv_bfloat16 as its 16 bits, with the hardware's
// conversions: round to nearest even from f32, a NaN becomes the canonical 0x7fff.
#pragma once

#include "cuda_runtime.h"

struct __nv_bfloat16_raw {
  unsigned short x;
};

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(__nv_bfloat16_raw raw) : __x(raw.x) {}
  operator __nv_bfloat16_raw() const { return {__x}; }
};

inline float __bfloat162float(__nv_bfloat16 x) {
  return __uint_as_float(static_cast<unsigned>(x.__x) << 16);
}

inline __nv_bfloat16 __float2bfloat16_rn(float x) {
  const unsigned bits = __float_as_uint(x);
  if (isnan(x)) return __nv_bfloat16_raw{0x7fff};
  const unsigned rounded = bits + 0x7fffu + (bits >> 16 & 1u);
  return __nv_bfloat16_raw{static_cast<unsigned short>(rounded >> 16)};
}
