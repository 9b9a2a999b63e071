#include "layers/model.h"

#include "kernels/ops.h"

namespace moe {

Model::Model(const Config& config, ParameterStore& store)
    : config_(config),
      store_(store),
      embedding_(store.add("embedding.weight", {config.model.vocab_size, config.model.d_model},
                           Init::normal, config.model.init_std, !config.train.no_decay_embeddings)),
      final_norm_(store.add("final_norm.weight", {config.model.d_model}, Init::ones, 0.0, false)) {
  for (int layer = 0; layer < config.model.n_layers; ++layer)
    blocks_.push_back(std::make_unique<Block>(store, layer, config));
  if (!config.model.tie_embeddings)
    lm_head_ = std::make_unique<Linear>(store, "lm_head", config.model.d_model,
                                        config.model.vocab_size, false, config.model.init_std);
}

static Tensor positions_for(int64_t batch, int64_t seq_len) {
  Tensor positions = Tensor::empty({batch * seq_len}, DType::i32);
  for (int64_t n = 0; n < batch * seq_len; ++n)
    positions.data<int32_t>()[n] = static_cast<int32_t>(n % seq_len);
  return positions;
}

ModelOutput Model::forward(const Tensor& inputs, const Tensor& targets, bool keep_for_backward,
                           Stream& stream) {
  MOE_CHECK(inputs.ndim() == 2 && targets.shape() == inputs.shape(),
            "Model::forward: inputs and targets must be [batch, seq_len] alike, got ", inputs.str(),
            " and ", targets.str());
  const int64_t batch = inputs.dim(0), seq_len = inputs.dim(1), tokens = batch * seq_len;
  MOE_CHECK(seq_len <= config_.model.max_seq_len, "Model::forward: sequence of ", seq_len,
            " tokens exceeds model.max_seq_len = ", config_.model.max_seq_len);
  const int64_t d_model = config_.model.d_model, vocab = config_.model.vocab_size;
  const DType dtype = store_.dtype();
  Saved s;
  s.inputs = inputs.view({tokens});
  s.targets = targets.view({tokens});
  s.positions = positions_for(batch, seq_len);
  s.batch = batch;

  Tensor x = Tensor::empty({tokens, d_model}, dtype);
  ops::embedding_forward(s.inputs, embedding_.value, x, stream);
  ModelOutput result;
  s.blocks.resize(blocks_.size());
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Tensor out = Tensor::empty({tokens, d_model}, dtype);
    blocks_[i]->forward(x, s.positions, batch, config_.train.recompute, keep_for_backward,
                        s.blocks[i], out, stream);
    const BlockStats& stats = s.blocks[i].stats;
    result.layers.push_back(stats);
    result.aux_loss += stats.aux_loss;
    result.z_loss += stats.z_loss;
    if (!keep_for_backward) s.blocks[i] = BlockSaved{};
    x = out;
  }
  s.final_in = x;
  s.final_rstd = Tensor::empty({tokens}, dtype);
  s.normed = Tensor::empty({tokens, d_model}, dtype);
  ops::rmsnorm_forward(x, final_norm_.value, static_cast<float>(config_.model.norm_eps), s.normed,
                       s.final_rstd, stream);
  s.logits = Tensor::empty({tokens, vocab}, dtype);
  if (lm_head_)
    lm_head_->forward(s.normed, s.logits, stream);
  else
    ops::matmul(s.normed, embedding_.value, s.logits, false, true, 1.0f, 0.0f, stream);
  Tensor losses = Tensor::empty({tokens}, dtype);
  s.lse = Tensor::empty({tokens}, dtype);
  ops::cross_entropy_forward(s.logits, s.targets, ignore_index, losses, s.lse, stream);

  Tensor losses64 = Tensor::empty({tokens}, DType::f64);
  ops::convert(losses, losses64, stream);
  double sum = 0;
  for (double l : losses64.to_vector<double>()) sum += l;
  for (int32_t t : s.targets.to_vector<int32_t>()) s.counted_targets += t != ignore_index;
  result.lm_loss = s.counted_targets > 0 ? sum / static_cast<double>(s.counted_targets) : 0.0;
  result.total = result.lm_loss + config_.moe.aux_loss_coeff * result.aux_loss +
                 config_.moe.z_loss_coeff * result.z_loss;
  result.logits = s.logits;
  saved_ = keep_for_backward ? std::move(s) : Saved{};
  return result;
}

void Model::backward(double loss_scale, Stream& stream) {
  Saved& s = saved_;
  MOE_ASSERT(s.logits.defined(), "Model::backward without a forward that kept its activations");
  const int64_t tokens = s.logits.dim(0), d_model = config_.model.d_model;
  const DType dtype = store_.dtype();
  Tensor dlogits = Tensor::empty(s.logits.shape(), dtype);
  const double grad_scale =
      s.counted_targets > 0 ? loss_scale / static_cast<double>(s.counted_targets) : 0.0;
  ops::cross_entropy_backward(s.logits, s.targets, s.lse, ignore_index,
                              static_cast<float>(grad_scale), dlogits, stream);
  Tensor dnormed = Tensor::empty({tokens, d_model}, dtype);
  if (lm_head_) {
    lm_head_->backward(s.normed, dlogits, &dnormed, false, stream);
  } else {
    ops::matmul(dlogits, embedding_.value, dnormed, false, false, 1.0f, 0.0f, stream);
    ops::matmul(dlogits, s.normed, embedding_.grad, true, false, 1.0f, 1.0f, stream);
  }
  Tensor dx = Tensor::empty({tokens, d_model}, dtype);
  ops::rmsnorm_backward(dnormed, s.final_in, final_norm_.value, s.final_rstd, dx, final_norm_.grad,
                        stream);
  Tensor dprev = Tensor::empty({tokens, d_model}, dtype);
  for (size_t i = blocks_.size(); i-- > 0;) {
    blocks_[i]->backward(s.positions, s.batch, s.blocks[i], dx, loss_scale, dprev, stream);
    s.blocks[i] = BlockSaved{};
    std::swap(dx, dprev);
  }
  ops::embedding_backward(s.inputs, dx, embedding_.grad, stream);
  saved_ = Saved{};
}

void Model::begin_step(Communicator* dp_group) const {
  for (const auto& block : blocks_)
    if (block->is_moe()) block->moe()->router().begin_step(dp_group);
}

void Model::update_expert_bias(const std::vector<std::vector<int64_t>>& loads) const {
  for (size_t i = 0; i < blocks_.size(); ++i)
    if (blocks_[i]->is_moe()) blocks_[i]->moe()->router().update_expert_bias(loads.at(i));
}

ParameterCounts Model::parameter_counts() const {
  ParameterCounts counts;
  counts.total = store_.numel();
  counts.embedding = embedding_.shape.numel();
  const MoeConfig& moe = config_.moe;
  int64_t inactive = 0;
  for (const auto& block : blocks_)
    if (block->is_moe())
      inactive +=
          int64_t{moe.num_experts - moe.top_k} * 3 * moe.expert_hidden * config_.model.d_model;
  counts.active_per_token = counts.total - inactive;
  return counts;
}

double Model::flops_per_token(int64_t seq_len) const {
  const ParameterCounts counts = parameter_counts();
  // Every active weight is used in one matmul except the embedding lookup, which is free unless
  // the LM head reuses it.
  const int64_t matmul_weights = counts.active_per_token - (lm_head_ ? counts.embedding : 0);
  const ModelConfig& m = config_.model;
  const double attention = 6.0 * m.n_layers * m.n_heads * m.effective_head_dim() * seq_len;
  return 6.0 * static_cast<double>(matmul_weights) + attention;
}

}  // namespace moe
