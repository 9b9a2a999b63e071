#include "layers/latent_attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "layers/activation_sum.h"
#include "layers/rope_frequencies.h"
#include "layers/tensor_parallel.h"

namespace moe {
namespace {

constexpr float kLatentNormEps = 1e-6f;

// Replicated over TP; each rank's gradient covers its heads only.
const Placement kReplicatedPartial{ParamGroup::dense, TpMode::partial, {}};

Tensor like(const Shape& shape, const Tensor& x) {
  return Tensor::empty(shape, x.dtype(), x.device());
}

}  // namespace

LatentAttention::LatentAttention(ParameterStore& store, const std::string& name,
                                 const ModelConfig& config, const ParallelGroups& groups)
    : tp_(groups.tp),
      heads_(tp_share(config.n_heads, "model.n_heads", groups)),
      nope_(config.qk_nope_head_dim),
      rope_(config.qk_rope_head_dim),
      v_dim_(config.v_head_dim),
      qk_dim_(nope_ + rope_),
      hd_(std::max(qk_dim_, v_dim_)),
      kv_rank_(config.kv_lora_rank),
      softmax_scale_(static_cast<float>(latent_softmax_factor(config.rope_scaling) /
                                        std::sqrt(static_cast<double>(qk_dim_)))),
      wkv_a_(store, name + ".wkv_a", config.d_model, kv_rank_ + rope_, false, config.init_std,
             kReplicatedPartial),
      wkv_b_(store, name + ".wkv_b", kv_rank_, config.n_heads * (nope_ + v_dim_), false,
             config.init_std, column_parallel(groups)),
      wo_(store, name + ".wo", config.n_heads * v_dim_, config.d_model, false, config.init_std,
          row_parallel(groups)),
      kv_a_norm_(store.add(name + ".kv_a_norm.weight", {kv_rank_}, Init::ones, 0.0, false,
                           kReplicatedPartial)) {
  const int64_t q_rows = config.n_heads * qk_dim_;
  if (config.q_lora_rank > 0) {
    wq_a_ = std::make_unique<Linear>(store, name + ".wq_a", config.d_model, config.q_lora_rank,
                                     false, config.init_std, kReplicatedPartial);
    q_a_norm_ = &store.add(name + ".q_a_norm.weight", {config.q_lora_rank}, Init::ones, 0.0, false,
                           kReplicatedPartial);
    wq_b_ = std::make_unique<Linear>(store, name + ".wq_b", config.q_lora_rank, q_rows, false,
                                     config.init_std, column_parallel(groups));
  } else {
    wq_ = std::make_unique<Linear>(store, name + ".wq", config.d_model, q_rows, false,
                                   config.init_std, column_parallel(groups));
  }
  const RopeFrequencies frequencies = rope_frequencies(config);
  Stream stream{store.device(), nullptr};
  inv_freq_ = ops::to_device(Tensor::from_vector<double>({rope_ / 2}, frequencies.inv_freq),
                             store.device(), stream);
  rope_scale_ = static_cast<float>(frequencies.attention_factor);
}

void LatentAttention::rotate_rope_columns(Tensor& rows, const Tensor& positions, bool backward,
                                          Stream& stream) const {
  const int64_t tokens = positions.dim(0), heads = rows.dim(0) / tokens;
  Tensor part = like({rows.dim(0), rope_}, rows);
  ops::copy_columns(rows, nope_, part, 0, rope_, stream);
  Tensor per_head = part.view({tokens, heads, rope_});
  if (backward)
    ops::rope_backward(per_head, positions, inv_freq_, rope_scale_, per_head, stream);
  else
    ops::rope_forward(per_head, positions, inv_freq_, rope_scale_, per_head, stream);
  ops::copy_columns(part, 0, rows, nope_, rope_, stream);
}

Tensor LatentAttention::padded(const Tensor& rows, int64_t width, Stream& stream) const {
  if (width == hd_ && rows.dim(1) == hd_) return rows;
  Tensor out = like({rows.dim(0), hd_}, rows);
  ops::fill(out, 0.0, stream);
  ops::copy_columns(rows, 0, out, 0, width, stream);
  return out;
}

Tensor LatentAttention::value_columns(const Tensor& out, Stream& stream) const {
  const Tensor rows = out.view({out.numel() / hd_, hd_});
  if (hd_ == v_dim_) return rows;
  Tensor narrow = like({rows.dim(0), v_dim_}, out);
  ops::copy_columns(rows, 0, narrow, 0, v_dim_, stream);
  return narrow;
}

Tensor LatentAttention::project_queries(const Tensor& x, const Tensor& positions,
                                        LatentAttentionSaved& saved, Stream& stream) const {
  const int64_t tokens = x.dim(0);
  Tensor q = like({tokens, heads_ * qk_dim_}, x);
  if (wq_) {
    wq_->forward(x, q, stream);
  } else {
    const int64_t rank = q_a_norm_->value.dim(0);
    saved.q_latent = like({tokens, rank}, x);
    saved.q_normed = like({tokens, rank}, x);
    saved.q_rstd = Tensor::empty({tokens}, accumulation_dtype(x.dtype()), x.device());
    wq_a_->forward(x, saved.q_latent, stream);
    ops::rmsnorm_forward(saved.q_latent, q_a_norm_->compute, kLatentNormEps, saved.q_normed,
                         saved.q_rstd, stream);
    wq_b_->forward(saved.q_normed, q, stream);
  }
  Tensor rows = q.view({tokens * heads_, qk_dim_});
  rotate_rope_columns(rows, positions, false, stream);
  return rows;
}

void LatentAttention::forward(const Tensor& x, const Tensor& positions, int64_t batch,
                              LatentAttentionSaved& saved, Tensor& y, Stream& stream) const {
  const int64_t tokens = x.dim(0), seq_len = tokens / batch, rows = tokens * heads_;
  const Shape heads_shape{batch, seq_len, heads_, hd_};
  saved.query =
      padded(project_queries(x, positions, saved, stream), qk_dim_, stream).view(heads_shape);

  Tensor latent = like({tokens, kv_rank_ + rope_}, x);
  wkv_a_.forward(x, latent, stream);
  saved.kv_latent = like({tokens, kv_rank_}, x);
  saved.kv_normed = like({tokens, kv_rank_}, x);
  saved.kv_rstd = Tensor::empty({tokens}, accumulation_dtype(x.dtype()), x.device());
  ops::copy_columns(latent, 0, saved.kv_latent, 0, kv_rank_, stream);
  ops::rmsnorm_forward(saved.kv_latent, kv_a_norm_.compute, kLatentNormEps, saved.kv_normed,
                       saved.kv_rstd, stream);
  Tensor rope_key = like({tokens, rope_}, x);
  ops::copy_columns(latent, kv_rank_, rope_key, 0, rope_, stream);
  Tensor rope_key_3d = rope_key.view({tokens, 1, rope_});
  ops::rope_forward(rope_key_3d, positions, inv_freq_, rope_scale_, rope_key_3d, stream);

  Tensor kv = like({tokens, heads_ * (nope_ + v_dim_)}, x);
  wkv_b_.forward(saved.kv_normed, kv, stream);
  const Tensor kv_rows = kv.view({rows, nope_ + v_dim_});
  Tensor key = like({rows, hd_}, x);
  if (hd_ > qk_dim_) ops::fill(key, 0.0, stream);
  ops::copy_columns(kv_rows, 0, key, 0, nope_, stream);
  Tensor rope_key_rows = like({rows, rope_}, x);
  ops::group_broadcast(rope_key, heads_, rope_key_rows, stream);
  ops::copy_columns(rope_key_rows, 0, key, nope_, rope_, stream);
  Tensor value = like({rows, hd_}, x);
  if (hd_ > v_dim_) ops::fill(value, 0.0, stream);
  ops::copy_columns(kv_rows, nope_, value, 0, v_dim_, stream);
  saved.key = key.view(heads_shape);
  saved.value = value.view(heads_shape);

  saved.out = Tensor::empty(heads_shape, x.dtype(), x.device());
  saved.lse = Tensor::empty({batch, heads_, seq_len}, accumulation_dtype(x.dtype()), x.device());
  ops::attention_forward(saved.query, saved.key, saved.value, softmax_scale_, saved.out, saved.lse,
                         stream);
  wo_.forward(value_columns(saved.out, stream).view({tokens, heads_ * v_dim_}), y, stream);
  all_reduce_activations(tp_, y, stream);
}

void LatentAttention::backward(const Tensor& x, const Tensor& positions,
                               const LatentAttentionSaved& saved, const Tensor& dy, Tensor& dx,
                               Stream& stream) const {
  const int64_t tokens = x.dim(0), rows = tokens * heads_;
  Tensor dout_narrow = like({tokens, heads_ * v_dim_}, x);
  wo_.backward(value_columns(saved.out, stream).view({tokens, heads_ * v_dim_}), dy, &dout_narrow,
               false, stream);
  const Tensor dout = padded(dout_narrow.view({rows, v_dim_}), v_dim_, stream);

  Tensor dquery = like({rows, hd_}, x), dkey = like({rows, hd_}, x), dvalue = like({rows, hd_}, x);
  Tensor dquery_4d = dquery.view(saved.query.shape()), dkey_4d = dkey.view(saved.key.shape()),
         dvalue_4d = dvalue.view(saved.value.shape());
  ops::attention_backward(dout.view(saved.out.shape()), saved.query, saved.key, saved.value,
                          saved.out, saved.lse, softmax_scale_, dquery_4d, dkey_4d, dvalue_4d,
                          stream);

  // Keys and values: back through W_kvb and the latent norm; the shared RoPE key sums its heads.
  Tensor dkv = like({rows, nope_ + v_dim_}, x);
  ops::copy_columns(dkey, 0, dkv, 0, nope_, stream);
  ops::copy_columns(dvalue, 0, dkv, nope_, v_dim_, stream);
  Tensor drope_key_rows = like({rows, rope_}, x), drope_key = like({tokens, rope_}, x);
  ops::copy_columns(dkey, nope_, drope_key_rows, 0, rope_, stream);
  ops::group_sum(drope_key_rows, heads_, drope_key, stream);
  Tensor drope_key_3d = drope_key.view({tokens, 1, rope_});
  ops::rope_backward(drope_key_3d, positions, inv_freq_, rope_scale_, drope_key_3d, stream);
  Tensor dkv_normed = like({tokens, kv_rank_}, x), dkv_latent = like({tokens, kv_rank_}, x);
  wkv_b_.backward(saved.kv_normed, dkv.view({tokens, heads_ * (nope_ + v_dim_)}), &dkv_normed,
                  false, stream);
  Tensor kv_norm_grad = kv_a_norm_.grad;
  ops::rmsnorm_backward(dkv_normed, saved.kv_latent, kv_a_norm_.compute, saved.kv_rstd, dkv_latent,
                        kv_norm_grad, stream);
  Tensor dlatent = like({tokens, kv_rank_ + rope_}, x);
  ops::copy_columns(dkv_latent, 0, dlatent, 0, kv_rank_, stream);
  ops::copy_columns(drope_key, 0, dlatent, kv_rank_, rope_, stream);
  wkv_a_.backward(x, dlatent, &dx, false, stream);

  // Queries: un-rotate the RoPE part, then back through W_q or W_qb, the norm and W_qa.
  Tensor dq = dquery;
  if (hd_ > qk_dim_) {
    dq = like({rows, qk_dim_}, x);
    ops::copy_columns(dquery, 0, dq, 0, qk_dim_, stream);
  }
  rotate_rope_columns(dq, positions, true, stream);
  const Tensor dq_flat = dq.view({tokens, heads_ * qk_dim_});
  if (wq_) {
    wq_->backward(x, dq_flat, &dx, true, stream);
  } else {
    Tensor dq_normed = like(saved.q_normed.shape(), x), dq_latent = like(saved.q_latent.shape(), x);
    wq_b_->backward(saved.q_normed, dq_flat, &dq_normed, false, stream);
    Tensor q_norm_grad = q_a_norm_->grad;
    ops::rmsnorm_backward(dq_normed, saved.q_latent, q_a_norm_->compute, saved.q_rstd, dq_latent,
                          q_norm_grad, stream);
    wq_a_->backward(x, dq_latent, &dx, true, stream);
  }
  all_reduce_activations(tp_, dx, stream);
}

}  // namespace moe
