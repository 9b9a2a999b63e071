#include "trainer/evaluation.h"

#include <algorithm>
#include <limits>

#include "kernels/ops.h"
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

// Adds each MoE block's expert choices of the tokens whose target counts to loads.
void add_expert_loads(const ModelOutput& out, const std::vector<int32_t>& targets,
                      ExpertLoads& loads, Stream& stream) {
  std::vector<Tensor> ids;
  for (const BlockStats& block : out.layers)
    if (block.is_moe) ids.push_back(block.expert_ids);
  if (ids.empty()) return;
  ids = ops::to_host(ids, stream);
  loads.resize(out.layers.size());
  size_t next = 0;
  for (size_t i = 0; i < out.layers.size(); ++i) {
    if (!out.layers[i].is_moe) continue;
    const std::vector<int32_t> experts = ids[next++].to_vector<int32_t>();
    const size_t k = experts.size() / targets.size();
    MOE_ASSERT(k * targets.size() == experts.size(), "block ", i, " routed ", experts.size(),
               " choices for ", targets.size(), " tokens");
    loads[i].resize(out.layers[i].load.size(), 0);
    for (size_t t = 0; t < targets.size(); ++t)
      if (targets[t] != LanguageModel::ignore_index)
        for (size_t j = 0; j < k; ++j) ++loads[i][experts[t * k + j]];
  }
}

}  // namespace

SetScore evaluate(LanguageModel& model, const TokenLoader& loader, int set, const EvalPlan& plan,
                  Stream& stream) {
  const int64_t sequences = std::min(plan.sequences, loader.num_val_batches(set, 1));
  if (sequences == 0) return {std::numeric_limits<double>::quiet_NaN(), 0, {}};
  const int ranks = group_size(plan.dp);
  const SequenceRange share = rank_share(sequences, group_rank(plan.dp), ranks);
  const int64_t largest_share = (sequences + ranks - 1) / ranks;
  const int64_t forwards = (largest_share + plan.micro_batch - 1) / plan.micro_batch;
  double loss_sum = 0, targets = 0;
  ExpertLoads loads;
  for (int64_t f = 0; f < forwards; ++f) {
    const int64_t first = share.begin + f * plan.micro_batch;
    const int64_t count = std::clamp<int64_t>(share.end - first, 0, plan.micro_batch);
    const TokenBatch b = padded_batch(loader, set, first, count, plan.micro_batch);
    const double counted =
        static_cast<double>(std::count_if(b.targets.begin(), b.targets.end(), [](int32_t t) {
          return t != LanguageModel::ignore_index;
        }));
    const ModelOutput out =
        model.forward(token_tensor(b.inputs, b.batch, b.seq_len),
                      token_tensor(b.targets, b.batch, b.seq_len), false, stream);
    loss_sum += counted * out.lm_loss;
    targets += counted;
    if (plan.expert_loads) add_expert_loads(out, b.targets, loads, stream);
  }
  // One all-reduce: the loss sum, the target count, then the loads block by block.
  std::vector<double> sums = {loss_sum, targets};
  for (const std::vector<int64_t>& block : loads)
    sums.insert(sums.end(), block.begin(), block.end());
  Tensor reduced = Tensor::from_vector<double>({static_cast<int64_t>(sums.size())}, sums);
  Stream host;
  if (plan.dp) all_reduce_sum(&plan.dp->host(), reduced, host);
  const double* total = reduced.data<double>();
  size_t next = 2;
  for (std::vector<int64_t>& block : loads)
    for (int64_t& count : block) count = static_cast<int64_t>(total[next++]);
  return {total[0] / total[1], static_cast<int64_t>(total[1]), loads};
}

ValidationLosses evaluate_all(LanguageModel& model, const TokenLoader& loader, const EvalPlan& plan,
                              Stream& stream) {
  ValidationLosses losses;
  double sum = 0;
  for (int set = 0; set < loader.num_val_sets(); ++set) {
    SetScore score = evaluate(model, loader, set, plan, stream);
    losses.per_set.push_back(score.loss);
    losses.tokens.push_back(score.tokens);
    losses.loads.push_back(std::move(score.loads));
    sum += score.loss;
  }
  losses.mean = losses.per_set.empty() ? std::numeric_limits<double>::quiet_NaN()
                                       : sum / static_cast<double>(losses.per_set.size());
  return losses;
}

}  // namespace moe
