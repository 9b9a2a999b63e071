#include "trainer/sampling.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "kernels/ops.h"

namespace moe {

std::vector<int32_t> generate(LanguageModel& model, const std::vector<int32_t>& prompt,
                              int64_t context_length, const SamplingOptions& options,
                              Stream& stream) {
  MOE_CHECK(!prompt.empty(), "generate: the prompt is empty");
  std::vector<int32_t> tokens = prompt;
  const Philox rng(options.seed, stream_id("sampling"));
  for (int64_t i = 0; i < options.new_tokens; ++i) {
    const int64_t length = std::min<int64_t>(context_length, static_cast<int64_t>(tokens.size()));
    const std::vector<int32_t> window(tokens.end() - length, tokens.end());
    const Tensor inputs = Tensor::from_vector<int32_t>({1, length}, window);
    const Tensor targets = Tensor::from_vector<int32_t>(
        {1, length}, std::vector<int32_t>(length, LanguageModel::ignore_index));
    const ModelOutput out = model.forward(inputs, targets, false, stream);
    const Tensor all_logits = model.full_logits(out.logits, stream);  // on the host
    const int64_t vocab = all_logits.dim(1);
    Tensor last = Tensor::empty({vocab}, DType::f64);
    ops::convert(all_logits.narrow(length - 1, 1).view({vocab}), last, stream);
    const double* logits = last.data<double>();
    int32_t next = static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
    if (options.temperature > 0) {
      std::vector<double> weights(vocab);
      const double max = logits[next];
      double sum = 0;
      for (int64_t v = 0; v < vocab; ++v)
        sum += weights[v] = std::exp((logits[v] - max) / options.temperature);
      double draw = rng.uniform(static_cast<uint64_t>(i)) * sum;
      for (next = 0; next < vocab - 1 && draw >= weights[next]; ++next) draw -= weights[next];
    }
    tokens.push_back(next);
  }
  return tokens;
}

}  // namespace moe
