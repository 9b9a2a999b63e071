// Text generation from a trained model, for the sample printed at the end of a run.
// No KV cache: each new token reruns the model over the last max_seq_len tokens, which is fine for
// a few hundred tokens on a small model. Sampling is temperature-scaled softmax drawn with Philox,
// so a given seed always writes the same text.
#pragma once

#include <cstdint>
#include <vector>

#include "layers/model.h"

namespace moe {

struct SamplingOptions {
  int64_t new_tokens = 200;
  double temperature = 0.8;  // 0 = greedy
  uint64_t seed = 0;
};

// Returns prompt followed by the generated tokens.
std::vector<int32_t> generate(LanguageModel& model, const std::vector<int32_t>& prompt,
                              int64_t context_length, const SamplingOptions& options,
                              Stream& stream);

}  // namespace moe
