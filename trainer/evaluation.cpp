#include "trainer/evaluation.h"

#include <algorithm>
#include <limits>

#include "trainer/train_step.h"

namespace moe {

double evaluate(LanguageModel& model, const TokenLoader& loader, int set, int64_t batch,
                int eval_batches, Stream& stream) {
  const int64_t batches = std::min<int64_t>(eval_batches, loader.num_val_batches(set, batch));
  if (batches == 0) return std::numeric_limits<double>::quiet_NaN();
  double total = 0;
  for (int64_t i = 0; i < batches; ++i) {
    const TokenBatch b = loader.val_batch(set, i, batch);
    total += model
                 .forward(token_tensor(b.inputs, b.batch, b.seq_len),
                          token_tensor(b.targets, b.batch, b.seq_len), false, stream)
                 .lm_loss;
  }
  return total / static_cast<double>(batches);
}

ValidationLosses evaluate_all(LanguageModel& model, const TokenLoader& loader, int64_t batch,
                              int eval_batches, Stream& stream) {
  ValidationLosses losses;
  double sum = 0;
  for (int set = 0; set < loader.num_val_sets(); ++set) {
    losses.per_set.push_back(evaluate(model, loader, set, batch, eval_batches, stream));
    sum += losses.per_set.back();
  }
  losses.mean = losses.per_set.empty() ? std::numeric_limits<double>::quiet_NaN()
                                       : sum / static_cast<double>(losses.per_set.size());
  return losses;
}

}  // namespace moe
