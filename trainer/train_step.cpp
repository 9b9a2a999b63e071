#include "trainer/train_step.h"

#include <cmath>

#include "kernels/ops.h"
#include "trainer/expert_resharding.h"
#include "trainer/gradient_sync.h"
#include "trainer/watchdog.h"

namespace moe {

void StepStats::add_micro_batch(const ModelOutput& out, int grad_accum) {
  lm_loss += out.lm_loss / grad_accum;
  aux_loss += out.aux_loss / grad_accum;
  z_loss += out.z_loss / grad_accum;
  mtp_loss += out.mtp_loss / grad_accum;
  if (loads.empty()) {
    loads.resize(out.layers.size());
    dropped.assign(out.layers.size(), 0);
    expert_rows.assign(out.layers.size(), 0);
  }
  for (size_t i = 0; i < out.layers.size(); ++i) {
    const BlockStats& layer = out.layers[i];
    if (!layer.is_moe) continue;
    if (loads[i].empty()) loads[i].assign(layer.load.size(), 0);
    for (size_t e = 0; e < layer.load.size(); ++e) loads[i][e] += layer.load[e];
    dropped[i] += layer.dropped;
    expert_rows[i] += layer.expert_rows;
  }
}

void StepStats::add(const StepStats& other) {
  steps += other.steps;
  tokens += other.tokens;
  lm_loss += other.lm_loss;
  aux_loss += other.aux_loss;
  z_loss += other.z_loss;
  mtp_loss += other.mtp_loss;
  grad_norm += other.grad_norm;
  skipped += other.skipped;
  if (fssdp_copies.empty()) fssdp_copies.assign(other.fssdp_copies.size(), 0.0);
  for (size_t i = 0; i < other.fssdp_copies.size(); ++i) fssdp_copies[i] += other.fssdp_copies[i];
  if (loads.empty()) {
    loads = other.loads;
    dropped = other.dropped;
    expert_rows = other.expert_rows;
    return;
  }
  for (size_t i = 0; i < other.loads.size(); ++i) {
    for (size_t e = 0; e < other.loads[i].size(); ++e) loads[i][e] += other.loads[i][e];
    dropped[i] += other.dropped[i];
    expert_rows[i] += other.expert_rows[i];
  }
}

Tensor token_tensor(const std::vector<int32_t>& values, int64_t batch, int64_t seq_len) {
  return Tensor::from_vector<int32_t>({batch, seq_len}, values);
}

namespace {

// Sums the step's losses and loads over the group and divides the losses by its size; tokens count
// the whole global batch. Host values, over the group's host communicator.
void reduce_over(Communicator& device_group, StepStats& stats) {
  Communicator& group = device_group.host();
  Stream stream;
  const double n = group.size();
  Tensor losses = Tensor::from_vector<double>(
      {4}, {stats.lm_loss, stats.aux_loss, stats.z_loss, stats.mtp_loss});
  group.all_reduce(losses, ReduceOp::sum, stream);
  stats.lm_loss = losses.data<double>()[0] / n;
  stats.aux_loss = losses.data<double>()[1] / n;
  stats.z_loss = losses.data<double>()[2] / n;
  stats.mtp_loss = losses.data<double>()[3] / n;
  stats.tokens *= group.size();
  std::vector<int64_t> flat;
  for (const auto& layer : stats.loads) flat.insert(flat.end(), layer.begin(), layer.end());
  flat.insert(flat.end(), stats.dropped.begin(), stats.dropped.end());
  Tensor counts = Tensor::from_vector<int64_t>({static_cast<int64_t>(flat.size())}, flat);
  group.all_reduce(counts, ReduceOp::sum, stream);
  const int64_t* summed = counts.data<int64_t>();
  for (auto& layer : stats.loads)
    for (int64_t& load : layer) load = *summed++;
  for (int64_t& dropped : stats.dropped) dropped = *summed++;
}

}  // namespace

StepStats accumulate_gradients(LanguageModel& model, ParameterStore& store, TokenLoader& loader,
                               const TrainConfig& train, const ParallelGroups& groups, bool average,
                               Stream& stream) {
  watchdog_phase("forward/backward");
  StepStats stats;
  store.zero_grads(stream);
  model.begin_step(groups.dp);
  for (int micro = 0; micro < train.grad_accum; ++micro) {
    const TokenBatch b = loader.next_train_batch(train.micro_batch_size);
    const ModelOutput out =
        model.forward(token_tensor(b.inputs, b.batch, b.seq_len),
                      token_tensor(b.targets, b.batch, b.seq_len), true, stream);
    model.backward(1.0 / train.grad_accum, stream);
    stats.add_micro_batch(out, train.grad_accum);
    stats.tokens += b.batch * b.seq_len;
  }
  watchdog_phase("gradient sync");
  sum_partial_gradients(store, groups, stream);
  if (average) average_gradients(store, groups, stream);
  if (group_size(groups.dp) > 1) reduce_over(*groups.dp, stats);
  return stats;
}

StepStats train_step(LanguageModel& model, AdamW& optimizer, ParameterStore& store,
                     TokenLoader& loader, const TrainConfig& train, const ParallelGroups& groups,
                     double lr, int64_t step, Stream& stream) {
  StepStats stats = accumulate_gradients(model, store, loader, train, groups,
                                         !optimizer.averages_gradients(), stream);
  if (const FssdpCoordinator* fssdp = model.fssdp())
    for (int layer = 0; layer < fssdp->layers(); ++layer)
      stats.fssdp_copies.push_back(fssdp->copies_per_forward(layer));
  watchdog_phase("optimizer");
  const bool finite_loss =
      std::isfinite(stats.lm_loss + stats.aux_loss + stats.z_loss + stats.mtp_loss);
  stats.grad_norm = finite_loss ? optimizer.step(lr, stream) : std::nan("");
  store.refresh_compute(stream);  // bf16 copies of the updated masters
  stats.skipped = std::isfinite(stats.grad_norm) ? 0 : 1;
  stats.steps = 1;
  model.end_step(stats.loads);
  watchdog_phase("expert resharding");
  maybe_reshard_experts(model, store, optimizer, step, stream);
  return stats;
}

}  // namespace moe
