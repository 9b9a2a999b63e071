#include "trainer/evaluation.h"

#include <algorithm>
#include <limits>

#include "parallel/parallel_groups.h"
#include "trainer/train_step.h"

namespace moe {

int64_t validation_sequences(const TrainConfig& train, int dp_size) {
  return int64_t{train.eval_batches} * train.micro_batch_size * train.grad_accum * dp_size;
}

SequenceRange rank_share(int64_t sequences, int rank, int ranks) {
  return {sequences * rank / ranks, sequences * (rank + 1) / ranks};
}

namespace {

// Sequences [first, first + count) of the set as one batch of `rows`, padded with ignored targets.
TokenBatch padded_batch(const TokenLoader& loader, int set, int64_t first, int64_t count,
                        int64_t rows) {
  const int64_t seq_len = loader.seq_len();
  TokenBatch out{std::vector<int32_t>(rows * seq_len, 0),
                 std::vector<int32_t>(rows * seq_len, LanguageModel::ignore_index), rows, seq_len};
  for (int64_t i = 0; i < count; ++i) {
    const TokenBatch one = loader.val_batch(set, first + i, 1);
    std::copy(one.inputs.begin(), one.inputs.end(), out.inputs.begin() + i * seq_len);
    std::copy(one.targets.begin(), one.targets.end(), out.targets.begin() + i * seq_len);
  }
  return out;
}

}  // namespace

double evaluate(LanguageModel& model, const TokenLoader& loader, int set, const EvalPlan& plan,
                Stream& stream) {
  const int64_t sequences = std::min(plan.sequences, loader.num_val_batches(set, 1));
  if (sequences == 0) return std::numeric_limits<double>::quiet_NaN();
  const int ranks = group_size(plan.dp);
  const SequenceRange share = rank_share(sequences, group_rank(plan.dp), ranks);
  const int64_t largest_share = (sequences + ranks - 1) / ranks;
  const int64_t forwards = (largest_share + plan.micro_batch - 1) / plan.micro_batch;
  double loss_sum = 0, targets = 0;
  for (int64_t f = 0; f < forwards; ++f) {
    const int64_t first = share.begin + f * plan.micro_batch;
    const int64_t count = std::clamp<int64_t>(share.end - first, 0, plan.micro_batch);
    const TokenBatch b = padded_batch(loader, set, first, count, plan.micro_batch);
    const double counted =
        static_cast<double>(std::count_if(b.targets.begin(), b.targets.end(), [](int32_t t) {
          return t != LanguageModel::ignore_index;
        }));
    loss_sum += counted * model
                              .forward(token_tensor(b.inputs, b.batch, b.seq_len),
                                       token_tensor(b.targets, b.batch, b.seq_len), false, stream)
                              .lm_loss;
    targets += counted;
  }
  Tensor sums = Tensor::from_vector<double>({2}, {loss_sum, targets});
  Stream host;
  if (plan.dp) all_reduce_sum(&plan.dp->host(), sums, host);
  return sums.data<double>()[0] / sums.data<double>()[1];
}

ValidationLosses evaluate_all(LanguageModel& model, const TokenLoader& loader, const EvalPlan& plan,
                              Stream& stream) {
  ValidationLosses losses;
  double sum = 0;
  for (int set = 0; set < loader.num_val_sets(); ++set) {
    losses.per_set.push_back(evaluate(model, loader, set, plan, stream));
    sum += losses.per_set.back();
  }
  losses.mean = losses.per_set.empty() ? std::numeric_limits<double>::quiet_NaN()
                                       : sum / static_cast<double>(losses.per_set.size());
  return losses;
}

}  // namespace moe
