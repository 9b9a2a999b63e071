// Validation loss, shared by the training loop and moe-eval so that both score exactly the same
// batches: the first eval_batches batches of a validation set (fewer when it is smaller), the
// same tokens every time. Every rank runs them (the forward is collective under TP and EP).
#pragma once

#include <vector>

#include "data/token_loader.h"
#include "layers/language_model.h"

namespace moe {

// Mean loss per target token over the batches; NaN when the set has no whole batch.
double evaluate(LanguageModel& model, const TokenLoader& loader, int set, int64_t batch,
                int eval_batches, Stream& stream);

// Every validation set's loss, in the loader's order, and their mean (NaN without sets).
struct ValidationLosses {
  std::vector<double> per_set;
  double mean = 0;
};
ValidationLosses evaluate_all(LanguageModel& model, const TokenLoader& loader, int64_t batch,
                              int eval_batches, Stream& stream);

}  // namespace moe
