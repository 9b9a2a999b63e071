// bf16 and f16 conversion, round-to-nearest-even, NaN preserved (quiet), overflow to infinity.
// Host code; the CUDA backend uses the hardware conversions, which round the same way.
#pragma once

#include "core/dtype.h"

namespace moe {

bf16_t float_to_bf16(float value);
float bf16_to_float(bf16_t value);
f16_t float_to_f16(float value);
float f16_to_float(f16_t value);

}  // namespace moe
