// Constraints within rope_scaling: each type has the numbers its formulas need (METHODS.md §7.2).
// transformers requires them too; a key the type does not read is ignored, as there.
#include "config/validation.h"

namespace moe {

void validate_rope_scaling(const Config& config, const std::string& where) {
  const RopeScaling& r = config.model.rope_scaling;
  const std::string type = std::string(word_of(r.type));
  if (r.type == RopeScalingType::none) {
    MOE_CHECK(r.factor == 0, "invalid config in ", where, ": rope_scaling.factor = ", r.factor,
              " is set but rope_scaling.type is none (allowed: linear, llama3, yarn)");
    return;
  }
  MOE_CHECK(r.factor > 0, "invalid config in ", where, ": rope_scaling.type = ", type,
            " needs rope_scaling.factor > 0 (0 = not set)");
  if (r.type == RopeScalingType::llama3) {
    MOE_CHECK(r.low_freq_factor > 0, "invalid config in ", where,
              ": rope_scaling.type = llama3 needs rope_scaling.low_freq_factor > 0 (0 = not set)");
    MOE_CHECK(r.high_freq_factor > r.low_freq_factor, "invalid config in ", where,
              ": rope_scaling.high_freq_factor = ", r.high_freq_factor,
              " must exceed rope_scaling.low_freq_factor = ", r.low_freq_factor);
  }
  if (r.type == RopeScalingType::yarn)
    MOE_CHECK(r.beta_fast > r.beta_slow, "invalid config in ", where,
              ": rope_scaling.beta_fast = ", r.beta_fast,
              " must exceed rope_scaling.beta_slow = ", r.beta_slow);
}

}  // namespace moe
