// The emulator's stand-in for <cuda_fp16.h>: __half as its 16 bits; conversions through
// core/half.h (round to nearest even), a NaN becomes the hardware's canonical 0x7fff.
#pragma once

#include "core/half.h"
#include "cuda_runtime.h"

struct __half_raw {
  unsigned short x;
};

struct __half {
  unsigned short __x;
  __half() = default;
  __half(__half_raw raw) : __x(raw.x) {}
  operator __half_raw() const { return {__x}; }
};

inline float __half2float(__half x) { return moe::f16_to_float(moe::f16_t{x.__x}); }

inline __half __float2half_rn(float x) {
  if (isnan(x)) return __half_raw{0x7fff};
  return __half_raw{moe::float_to_f16(x).bits};
}
