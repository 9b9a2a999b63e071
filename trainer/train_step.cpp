#include "trainer/train_step.h"

#include <cmath>

namespace moe {

void StepStats::add_micro_batch(const ModelOutput& out, int grad_accum) {
  lm_loss += out.lm_loss / grad_accum;
  aux_loss += out.aux_loss / grad_accum;
  z_loss += out.z_loss / grad_accum;
  if (loads.empty()) {
    loads.resize(out.layers.size());
    dropped.assign(out.layers.size(), 0);
  }
  for (size_t i = 0; i < out.layers.size(); ++i) {
    const BlockStats& layer = out.layers[i];
    if (!layer.is_moe) continue;
    if (loads[i].empty()) loads[i].assign(layer.load.size(), 0);
    for (size_t e = 0; e < layer.load.size(); ++e) loads[i][e] += layer.load[e];
    dropped[i] += layer.dropped;
  }
}

void StepStats::add(const StepStats& other) {
  steps += other.steps;
  tokens += other.tokens;
  lm_loss += other.lm_loss;
  aux_loss += other.aux_loss;
  z_loss += other.z_loss;
  grad_norm += other.grad_norm;
  if (loads.empty()) {
    loads = other.loads;
    dropped = other.dropped;
    return;
  }
  for (size_t i = 0; i < other.loads.size(); ++i) {
    for (size_t e = 0; e < other.loads[i].size(); ++e) loads[i][e] += other.loads[i][e];
    dropped[i] += other.dropped[i];
  }
}

Tensor token_tensor(const std::vector<int32_t>& values, int64_t batch, int64_t seq_len) {
  return Tensor::from_vector<int32_t>({batch, seq_len}, values);
}

StepStats train_step(Model& model, AdamW& optimizer, ParameterStore& store, TokenLoader& loader,
                     const TrainConfig& train, double lr, int64_t step, Stream& stream) {
  StepStats stats;
  store.zero_grads(stream);
  for (int micro = 0; micro < train.grad_accum; ++micro) {
    const TokenBatch b = loader.next_train_batch(train.micro_batch_size);
    const ModelOutput out =
        model.forward(token_tensor(b.inputs, b.batch, b.seq_len),
                      token_tensor(b.targets, b.batch, b.seq_len), true, stream);
    MOE_CHECK(std::isfinite(out.total), "the loss is ", out.total, " at step ", step + 1,
              " (micro-batch ", micro, "); lower train.lr or check the data");
    model.backward(1.0 / train.grad_accum, stream);
    stats.add_micro_batch(out, train.grad_accum);
    stats.tokens += b.batch * b.seq_len;
  }
  stats.grad_norm = optimizer.step(lr, stream);
  stats.steps = 1;
  model.update_expert_bias(stats.loads);
  return stats;
}

}  // namespace moe
