#include "layers/model.h"

#include <cmath>
#include <cstring>

#include "core/log.h"
#include "kernels/ops.h"
#include "layers/activation_sum.h"
#include "layers/tensor_parallel.h"

namespace moe {

Model::Model(ModelConfig model, MoeConfig moe, ParameterStore& store, const ParallelGroups& groups,
             ModelOptions options)
    : model_(model),
      moe_(moe),
      options_(options),
      store_(store),
      tp_(groups.tp),
      vocab_shard_(tp_share(model.vocab_size, "model.vocab_size", groups)),
      vocab_start_(group_rank(groups.tp) * vocab_shard_),
      embedding_(store.add("embedding.weight", {model.vocab_size, model.d_model}, Init::normal,
                           model.init_std, options.decay_embedding, column_parallel(groups))),
      final_norm_(store.add("final_norm.weight", {model.d_model}, Init::ones, 0.0, false)) {
  if (options.bf16) store.set_compute_dtype(DType::bf16);
  const int layers = model.n_layers + model.mtp_depth;
  int moe_layers = 0;
  for (int layer = 0; layer < layers; ++layer) moe_layers += moe.is_moe_layer(layer);
  if (options.fssdp && moe_layers > 0) {
    const FssdpPlacement& f = *options.fssdp;
    const int ranks = group_size(groups.ep);
    fssdp_ = std::make_unique<FssdpCoordinator>(moe_layers, moe.num_experts, f, groups.ep);
    if (const std::optional<LeastLoadedBudget>& l = f.least_loaded)
      MOE_LOG_INFO("LLEP: the ", moe.num_experts, " experts of each of ", moe_layers,
                   " MoE layers in blocks over ", ranks,
                   " ranks; a forward whose busiest rank has ", l->imbalance_threshold,
                   "x the mean tokens moves the excess over ", l->capacity_factor,
                   "x, in chunks of at least ", l->min_tokens, ", with up to ", l->slots,
                   " experts per rank and layer");
    else
      MOE_LOG_INFO(
          "FSSDP: the ", moe.num_experts, " experts of each of ", moe_layers,
          " MoE layers have one owner among ", ranks, " ranks; the busiest are copied to up to ",
          f.budget.slots, " more per rank and layer, planned from ",
          f.calibrate ? std::string("each forward's routed tokens")
                      : "the mean load of the last " + std::to_string(f.window) + " steps");
  }
  for (int layer = 0, moe_layer = 0; layer < layers; ++layer) {
    blocks_.push_back(
        std::make_unique<Block>(store, layer, model, moe, groups, fssdp_.get(), moe_layer));
    moe_layer += moe.is_moe_layer(layer);
  }
  if (!model.tie_embeddings)
    lm_head_ = std::make_unique<Linear>(store, "lm_head", model.d_model, model.vocab_size, false,
                                        model.init_std, column_parallel(groups));
  for (int layer = model.n_layers; layer < layers; ++layer) {
    const std::string prefix = "layers." + std::to_string(layer);
    mtp_inputs_.push_back(
        std::make_unique<MtpInput>(store, prefix, model.d_model, model.norm_eps, model.init_std));
    mtp_norms_.push_back(
        &store.add(prefix + ".final_norm.weight", {model.d_model}, Init::ones, 0.0, false));
  }
}

// Token ids must be in the vocabulary; targets too, or ignore_index.
static void check_ids(const Tensor& ids, const char* what, int64_t vocab, bool allow_ignore) {
  const int32_t* p = ids.data<int32_t>();
  for (int64_t n = 0; n < ids.numel(); ++n) {
    if (allow_ignore && p[n] == Model::ignore_index) continue;
    MOE_CHECK(p[n] >= 0 && p[n] < vocab, "Model::forward: ", what, "[", n, "] = ", p[n],
              " is outside the vocabulary [0, ", vocab, ") of model.vocab_size");
  }
}

// Every TP rank's logsumexp over its vocabulary shard, [ranks * N] on the device.
static Tensor gather_shard_lse(const Tensor& shard_lse, Communicator* tp, Stream& stream) {
  const int ranks = group_size(tp);
  if (ranks == 1) return shard_lse;
  Tensor all = Tensor::empty({shard_lse.numel() * ranks}, shard_lse.dtype(), shard_lse.device());
  tp->all_gather(shard_lse, all, stream);
  return all;
}

// The full-vocabulary logsumexp of the gathered shard ones, on the host: f64 [N].
static std::vector<double> full_vocab_lse(const Tensor& gathered_lse, int64_t rows) {
  const int64_t ranks = gathered_lse.numel() / rows;
  Tensor all64 = Tensor::empty({rows * ranks}, DType::f64);
  Stream host;
  ops::convert(gathered_lse, all64, host);
  const double* l = all64.data<double>();
  std::vector<double> lse(rows);
  for (int64_t n = 0; n < rows; ++n) {
    double max = l[n];
    for (int64_t r = 1; r < ranks; ++r) max = std::max(max, l[r * rows + n]);
    double sum = 0;
    for (int64_t r = 0; r < ranks; ++r) sum += std::exp(l[r * rows + n] - max);
    lse[n] = max + std::log(sum);
  }
  return lse;
}

Tensor Model::begin_forward(const Tensor& inputs, const Tensor& targets, Stream& stream) {
  MOE_CHECK(inputs.ndim() == 2 && targets.shape() == inputs.shape(),
            "Model::forward: inputs and targets must be [batch, seq_len] alike, got ", inputs.str(),
            " and ", targets.str());
  const int64_t batch = inputs.dim(0), seq_len = inputs.dim(1), tokens = batch * seq_len;
  MOE_CHECK(seq_len <= model_.max_seq_len, "Model::forward: sequence of ", seq_len,
            " tokens exceeds model.max_seq_len = ", model_.max_seq_len);
  Saved& s = saved_ = Saved{};
  // Ids are checked on the host, then live where the model does.
  const Tensor host_inputs = ops::to_host(inputs, stream).view({tokens});
  s.head.host_targets = ops::to_host(targets, stream).view({tokens});
  check_ids(host_inputs, "inputs", model_.vocab_size, false);
  check_ids(s.head.host_targets, "targets", model_.vocab_size, true);
  // Inputs, targets, positions and each MTP depth's shifted ids and targets go to the device in
  // one copy.
  const int depth = model_.mtp_depth;
  Tensor ids = Tensor::empty({(3 + 2 * depth) * tokens}, DType::i32);
  Stream host;
  Tensor input_part = ids.narrow(0, tokens), target_part = ids.narrow(tokens, tokens);
  ops::copy(host_inputs, input_part, host);
  ops::copy(s.head.host_targets, target_part, host);
  int32_t* positions = ids.data<int32_t>() + 2 * tokens;
  for (int64_t n = 0; n < tokens; ++n) positions[n] = static_cast<int32_t>(n % seq_len);
  s.mtp.resize(depth);
  for (int k = 1; k <= depth; ++k) {
    int32_t* shifted_ids = ids.data<int32_t>() + (1 + 2 * k) * tokens;
    int32_t* shifted_targets = shifted_ids + tokens;
    const int32_t* in = host_inputs.data<int32_t>();
    const int32_t* out = s.head.host_targets.data<int32_t>();
    for (int64_t n = 0; n < tokens; ++n) {
      const bool inside = n % seq_len + k < seq_len;
      shifted_ids[n] = inside ? in[n + k] : 0;
      shifted_targets[n] = inside ? out[n + k] : ignore_index;
    }
    s.mtp[k - 1].head.host_targets = ids.narrow((2 + 2 * k) * tokens, tokens).clone();
  }
  const Device device = store_.device();
  const Tensor placed = ops::to_device(ids, device, stream);
  s.inputs = placed.narrow(0, tokens);
  s.head.targets = placed.narrow(tokens, tokens);
  s.positions = placed.narrow(2 * tokens, tokens);
  for (int k = 1; k <= depth; ++k) {
    s.mtp[k - 1].ids = placed.narrow((1 + 2 * k) * tokens, tokens);
    s.mtp[k - 1].head.targets = placed.narrow((2 + 2 * k) * tokens, tokens);
  }
  s.batch = batch;
  s.blocks.resize(blocks_.size());
  s.stats.resize(blocks_.size());
  return embed(s.inputs, stream);
}

Tensor Model::forward_blocks(int begin, int end, const Tensor& input, bool keep_for_backward,
                             Stream& stream) {
  Saved& s = saved_;
  MOE_ASSERT(
      s.inputs.defined() && 0 <= begin && begin <= end && end <= static_cast<int>(blocks_.size()),
      "Model::forward_blocks(", begin, ", ", end, ") outside a forward");
  Tensor x = input;
  for (int i = begin; i < end; ++i) {
    Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
    blocks_[i]->forward(x, s.positions, s.batch, options_.recompute, keep_for_backward, s.blocks[i],
                        out, stream);
    s.stats[i] = s.blocks[i].stats;
    if (!keep_for_backward) s.blocks[i] = BlockSaved{};
    x = out;
  }
  return x;
}

double Model::head_forward(const Tensor& x, const Parameter& norm, HeadSaved& head,
                           Stream& stream) const {
  const int64_t tokens = x.dim(0), d_model = model_.d_model;
  const DType dtype = store_.compute_dtype(), wide = accumulation_dtype(dtype);
  const Device device = store_.device();
  head.in = x;
  head.rstd = Tensor::empty({tokens}, wide, device);
  head.normed = Tensor::empty({tokens, d_model}, dtype, device);
  ops::rmsnorm_forward(x, norm.compute, static_cast<float>(model_.norm_eps), head.normed, head.rstd,
                       stream);
  head.logits = Tensor::empty({tokens, vocab_shard_}, wide, device);  // the cross-entropy's dtype
  if (lm_head_)
    lm_head_->forward(head.normed, head.logits, stream);
  else
    ops::matmul(head.normed, embedding_.compute, head.logits, false, true, 1.0f, 0.0f, stream);
  Tensor target_logits = Tensor::empty({tokens}, wide, device);
  Tensor shard_lse = Tensor::empty({tokens}, wide, device);
  ops::cross_entropy_forward(head.logits, head.targets, ignore_index, vocab_start_, target_logits,
                             shard_lse, stream);
  all_reduce_sum(tp_, target_logits, stream);
  const std::vector<Tensor> reads =
      ops::to_host({gather_shard_lse(shard_lse, tp_, stream), target_logits}, stream);
  const std::vector<double> lse = full_vocab_lse(reads[0], tokens);
  Stream host;
  if (group_size(tp_) == 1) {
    head.lse = shard_lse;  // the whole vocabulary's already
  } else {
    Tensor lse_host = Tensor::empty({tokens}, wide);
    ops::convert(Tensor::from_vector<double>({tokens}, lse), lse_host, host);
    head.lse = ops::to_device(lse_host, device, stream);
  }
  Tensor target64 = Tensor::empty({tokens}, DType::f64);
  ops::convert(reads[1], target64, host);
  const int32_t* t = head.host_targets.data<int32_t>();
  double sum = 0;
  for (int64_t n = 0; n < tokens; ++n) {
    if (t[n] == ignore_index) continue;
    sum += lse[n] - target64.data<double>()[n];
    ++head.counted_targets;
  }
  return head.counted_targets > 0 ? sum / static_cast<double>(head.counted_targets) : 0.0;
}

Tensor Model::embed(const Tensor& ids, Stream& stream) const {
  Tensor x = Tensor::empty({ids.numel(), model_.d_model}, store_.compute_dtype(), ids.device());
  ops::embedding_forward(ids, embedding_.compute, vocab_start_, x, stream);
  all_reduce_activations(tp_, x, stream);
  return x;
}

double Model::mtp_forward(bool keep_for_backward, Stream& stream) {
  Saved& s = saved_;
  Tensor h = s.head.normed;
  double sum = 0;
  for (int k = 0; k < model_.mtp_depth; ++k) {
    MtpSaved& m = s.mtp[k];
    const int block = model_.n_layers + k;
    Tensor joined = Tensor::empty(h.shape(), h.dtype(), h.device());
    mtp_inputs_[k]->forward(embed(m.ids, stream), h, m.input, joined, stream);
    h = forward_blocks(block, block + 1, joined, keep_for_backward, stream);
    sum += head_forward(h, *mtp_norms_[k], m.head, stream);
  }
  return model_.mtp_depth > 0 ? sum / model_.mtp_depth : 0.0;
}

ModelOutput Model::finish_forward(const Tensor& x, bool keep_for_backward, Stream& stream) {
  Saved& s = saved_;
  MOE_ASSERT(s.inputs.defined(), "Model::finish_forward outside a forward");
  ModelOutput result;
  result.lm_loss = head_forward(x, final_norm_, s.head, stream);
  result.mtp_loss = mtp_forward(keep_for_backward, stream);
  for (const BlockStats& stats : s.stats) {
    result.layers.push_back(stats);
    result.aux_loss += stats.aux_loss;
    result.z_loss += stats.z_loss;
  }
  result.total = result.lm_loss + model_.mtp_loss_weight * result.mtp_loss +
                 moe_.aux_loss_coeff * result.aux_loss + moe_.z_loss_coeff * result.z_loss;
  result.logits = s.head.logits;
  if (!keep_for_backward) saved_ = Saved{};
  return result;
}

ModelOutput Model::forward(const Tensor& inputs, const Tensor& targets, bool keep_for_backward,
                           Stream& stream) {
  const Tensor x = begin_forward(inputs, targets, stream);
  return finish_forward(forward_blocks(0, num_blocks(), x, keep_for_backward, stream),
                        keep_for_backward, stream);
}

Tensor Model::head_backward(const HeadSaved& head, const Parameter& norm, double scale,
                            const Tensor& extra_dnormed, Stream& stream) const {
  const int64_t tokens = head.logits.dim(0), d_model = model_.d_model;
  const DType dtype = store_.compute_dtype();
  const Device device = store_.device();
  Tensor wide_dlogits = Tensor::empty(head.logits.shape(), head.logits.dtype(), device);
  const double grad_scale =
      head.counted_targets > 0 ? scale / static_cast<double>(head.counted_targets) : 0.0;
  ops::cross_entropy_backward(head.logits, head.targets, head.lse, ignore_index, vocab_start_,
                              static_cast<float>(grad_scale), wide_dlogits, stream);
  Tensor dlogits = wide_dlogits;  // an activation gradient from here on: in the compute dtype
  if (dtype != wide_dlogits.dtype()) {
    dlogits = Tensor::empty(head.logits.shape(), dtype, device);
    ops::convert(wide_dlogits, dlogits, stream);
  }
  Tensor dnormed = Tensor::empty({tokens, d_model}, dtype, device);
  if (lm_head_) {
    lm_head_->backward(head.normed, dlogits, &dnormed, false, stream);
  } else {
    ops::matmul(dlogits, embedding_.compute, dnormed, false, false, 1.0f, 0.0f, stream);
    if (embedding_.grad.defined())
      ops::matmul(dlogits, head.normed, embedding_.grad, true, false, 1.0f, 1.0f, stream);
  }
  all_reduce_activations(tp_, dnormed, stream);
  if (extra_dnormed.defined()) ops::add(dnormed, extra_dnormed, dnormed, stream);
  Tensor dx = Tensor::empty({tokens, d_model}, dtype, device);
  Tensor dweight = norm.grad;
  ops::rmsnorm_backward(dnormed, head.in, norm.compute, head.rstd, dx, dweight, stream);
  return dx;
}

Tensor Model::mtp_backward(double loss_scale, Stream& stream) {
  Saved& s = saved_;
  const double scale = loss_scale * model_.mtp_loss_weight / std::max(model_.mtp_depth, 1);
  Tensor carry;  // the gradient at module k's output from module k + 1
  for (int k = model_.mtp_depth; k-- > 0;) {
    MtpSaved& m = s.mtp[k];
    Tensor dout = head_backward(m.head, *mtp_norms_[k], scale, Tensor(), stream);
    if (carry.defined()) ops::add(dout, carry, dout, stream);
    const int block = model_.n_layers + k;
    const Tensor djoined = backward_blocks(block, block + 1, dout, loss_scale, stream);
    Tensor demb = Tensor::empty(djoined.shape(), djoined.dtype(), djoined.device());
    carry = Tensor::empty(djoined.shape(), djoined.dtype(), djoined.device());
    mtp_inputs_[k]->backward(m.input, djoined, demb, carry, stream);
    if (embedding_.grad.defined())
      ops::embedding_backward(m.ids, demb, vocab_start_, embedding_.grad, stream);
    m = MtpSaved{};
  }
  return carry;
}

Tensor Model::begin_backward(double loss_scale, Stream& stream) {
  MOE_ASSERT(saved_.head.logits.defined(),
             "Model::backward without a forward that kept its activations");
  const Tensor from_mtp = mtp_backward(loss_scale, stream);
  return head_backward(saved_.head, final_norm_, loss_scale, from_mtp, stream);
}

Tensor Model::backward_blocks(int begin, int end, const Tensor& dout, double loss_scale,
                              Stream& stream) {
  Saved& s = saved_;
  MOE_ASSERT(0 <= begin && begin <= end && end <= static_cast<int>(blocks_.size()),
             "Model::backward_blocks(", begin, ", ", end, ")");
  Tensor grad = dout;
  for (int i = end; i-- > begin;) {
    MOE_ASSERT(s.blocks[i].x.defined(), "Model::backward_blocks: block ", i,
               " kept no activations");
    Tensor dprev = Tensor::empty(dout.shape(), dout.dtype(), dout.device());
    blocks_[i]->backward(s.positions, s.batch, s.blocks[i], grad, loss_scale, dprev, stream);
    s.blocks[i] = BlockSaved{};
    grad = dprev;
  }
  return grad;
}

void Model::finish_backward(const Tensor& dx, Stream& stream) {
  if (fssdp_) fssdp_->finish_pending(stream);  // the last MoE layer's copies' gradients
  if (embedding_.grad.defined())
    ops::embedding_backward(saved_.inputs, dx, vocab_start_, embedding_.grad, stream);
  saved_ = Saved{};
}

void Model::backward(double loss_scale, Stream& stream) {
  const Tensor dx = begin_backward(loss_scale, stream);
  finish_backward(backward_blocks(0, num_blocks(), dx, loss_scale, stream), stream);
}

void Model::begin_step(Communicator* dp_group) const {
  for (const auto& block : blocks_)
    if (block->is_moe()) block->moe()->router().begin_step(dp_group);
  if (fssdp_) fssdp_->begin_step();
}

void Model::end_step(const std::vector<std::vector<int64_t>>& loads) const {
  std::vector<std::vector<int64_t>> moe_loads;
  for (size_t i = 0; i < blocks_.size(); ++i)
    if (blocks_[i]->is_moe()) {
      blocks_[i]->moe()->router().update_expert_bias(loads.at(i));
      moe_loads.push_back(loads.at(i));
    }
  if (fssdp_) fssdp_->record(moe_loads);
}

std::vector<std::vector<Parameter*>> Model::fssdp_parameters() const {
  std::vector<std::vector<Parameter*>> layers;
  if (fssdp_)
    for (const auto& block : blocks_)
      if (block->is_moe()) layers.push_back(block->moe()->experts().parameters());
  return layers;
}

Tensor Model::full_logits(const Tensor& shard, Stream& stream) const {
  const int ranks = group_size(tp_);
  if (ranks == 1) return ops::to_host(shard, stream);
  const int64_t rows = shard.dim(0);
  Tensor gathered = Tensor::empty({ranks * rows, vocab_shard_}, shard.dtype(), shard.device());
  tp_->all_gather(shard, gathered, stream);
  const Tensor blocks = ops::to_host(gathered, stream);
  // Block r holds columns [r * shard, (r + 1) * shard) of every row.
  Tensor full = Tensor::empty({rows, ranks * vocab_shard_}, shard.dtype());
  const int64_t row_bytes = vocab_shard_ * static_cast<int64_t>(dtype_size(shard.dtype()));
  const auto* src = static_cast<const char*>(blocks.raw());
  auto* dst = static_cast<char*>(full.raw());
  for (int r = 0; r < ranks; ++r)
    for (int64_t n = 0; n < rows; ++n)
      std::memcpy(dst + (n * ranks + r) * row_bytes, src + (r * rows + n) * row_bytes, row_bytes);
  return full;
}

ParameterCounts Model::parameter_counts() const {
  ParameterCounts counts;
  for (const Parameter& p : store_.parameters()) counts.total += p.global_shape.numel();
  counts.embedding = embedding_.global_shape.numel();
  const MoeConfig& moe = moe_;
  int64_t inactive = 0;
  for (const auto& block : blocks_)
    if (block->is_moe())
      inactive += int64_t{moe.num_experts - moe.top_k} * 3 * moe.expert_hidden * model_.d_model;
  counts.active_per_token = counts.total - inactive;
  counts.trainable = counts.total;
  return counts;
}

double Model::flops_per_token(int64_t seq_len) const {
  const ParameterCounts counts = parameter_counts();
  // Every active weight is used in one matmul except the embedding lookup, which is free unless
  // the LM head reuses it.
  const ModelConfig& m = model_;
  const int64_t matmul_weights = counts.active_per_token - (lm_head_ ? counts.embedding : 0) +
                                 int64_t{m.mtp_depth} * m.vocab_size * m.d_model;  // MTP heads
  // Causal scores and weighted values per head and token: the query-key and the value width.
  const int64_t head_widths = m.attention == AttentionKind::mla
                                  ? m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim
                                  : 2 * m.effective_head_dim();
  const double attention =
      3.0 * (m.n_layers + m.mtp_depth) * m.n_heads * static_cast<double>(head_widths) * seq_len;
  return 6.0 * static_cast<double>(matmul_weights) + attention;
}

}  // namespace moe
