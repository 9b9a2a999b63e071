#include "layers/attention.h"

#include <cmath>

#include "kernels/ops.h"
#include "layers/activation_sum.h"
#include "layers/rope_frequencies.h"
#include "layers/tensor_parallel.h"

namespace moe {

Attention::Attention(ParameterStore& store, const std::string& name, const ModelConfig& config,
                     const ParallelGroups& groups)
    : tp_(groups.tp),
      n_heads_(tp_share(config.n_heads, "model.n_heads", groups)),
      n_kv_heads_(tp_share(config.n_kv_heads, "model.n_kv_heads", groups)),
      head_dim_(config.effective_head_dim()),
      norm_per_head_(config.qk_norm_scope == QkNormScope::head),
      norm_eps_(static_cast<float>(config.norm_eps)),
      wq_(store, name + ".wq", config.d_model, config.n_heads * head_dim_, config.qkv_bias,
          config.init_std, column_parallel(groups)),
      wk_(store, name + ".wk", config.d_model, config.n_kv_heads * head_dim_, config.qkv_bias,
          config.init_std, column_parallel(groups)),
      wv_(store, name + ".wv", config.d_model, config.n_kv_heads * head_dim_, config.qkv_bias,
          config.init_std, column_parallel(groups)),
      wo_(store, name + ".wo", config.n_heads * head_dim_, config.d_model, false, config.init_std,
          row_parallel(groups)) {
  const RopeFrequencies rope = rope_frequencies(config);
  const int64_t pairs = static_cast<int64_t>(rope.inv_freq.size());
  Stream stream{store.device(), nullptr};
  inv_freq_ =
      ops::to_device(Tensor::from_vector<double>({pairs}, rope.inv_freq), store.device(), stream);
  rope_scale_ = static_cast<float>(rope.attention_factor);
  const Placement shared{ParamGroup::dense, TpMode::partial, {}};
  if (config.qk_norm) {
    const int64_t q_width = norm_per_head_ ? head_dim_ : config.n_heads * head_dim_,
                  k_width = norm_per_head_ ? head_dim_ : config.n_kv_heads * head_dim_;
    q_norm_ = &store.add(name + ".q_norm.weight", {q_width}, Init::ones, 0.0, false, shared);
    k_norm_ = &store.add(name + ".k_norm.weight", {k_width}, Init::ones, 0.0, false, shared);
  }
}

Shape Attention::norm_rows(int64_t tokens, int64_t heads) const {
  return norm_per_head_ ? Shape{tokens * heads, head_dim_} : Shape{tokens, heads * head_dim_};
}

void Attention::project_and_rotate(const Linear& proj, const Parameter* norm, const Tensor& x,
                                   const Tensor& positions, int64_t heads, Tensor& raw,
                                   Tensor& rstd, Tensor& rotated, Stream& stream) const {
  const int64_t tokens = x.dim(0);
  rotated = Tensor::empty({tokens, heads, head_dim_}, x.dtype(), x.device());
  Tensor flat = rotated.view({tokens, heads * head_dim_});
  if (norm) {
    const Shape rows_shape = norm_rows(tokens, heads);
    raw = Tensor::empty({tokens, heads * head_dim_}, x.dtype(), x.device());
    rstd = Tensor::empty({rows_shape[0]}, accumulation_dtype(x.dtype()), x.device());
    proj.forward(x, raw, stream);
    Tensor rows = rotated.view(rows_shape);
    ops::rmsnorm_forward(raw.view(rows_shape), norm->compute, norm_eps_, rows, rstd, stream);
  } else {
    proj.forward(x, flat, stream);
  }
  ops::rope_forward(rotated, positions, inv_freq_, rope_scale_, rotated, stream);
}

void Attention::rotate_and_project_backward(const Linear& proj, const Parameter* norm,
                                            const Tensor& x, const Tensor& positions, int64_t heads,
                                            const Tensor& raw, const Tensor& rstd,
                                            const Tensor& drotated, Tensor& dx,
                                            Stream& stream) const {
  const int64_t tokens = x.dim(0);
  Tensor dunrotated = Tensor::empty({tokens, heads, head_dim_}, x.dtype(), x.device());
  ops::rope_backward(drotated.view({tokens, heads, head_dim_}), positions, inv_freq_, rope_scale_,
                     dunrotated, stream);
  Tensor dproj = dunrotated.view({tokens, heads * head_dim_});
  if (norm) {
    const Shape rows_shape = norm_rows(tokens, heads);
    Tensor draw = Tensor::empty(rows_shape, x.dtype(), x.device());
    Tensor dweight = norm->grad;
    ops::rmsnorm_backward(dunrotated.view(rows_shape), raw.view(rows_shape), norm->compute, rstd,
                          draw, dweight, stream);
    dproj = draw.view({tokens, heads * head_dim_});
  }
  proj.backward(x, dproj, &dx, true, stream);
}

void Attention::forward(const Tensor& x, const Tensor& positions, int64_t batch,
                        AttentionSaved& saved, Tensor& y, Stream& stream) const {
  const int64_t tokens = x.dim(0), seq_len = tokens / batch;
  project_and_rotate(wq_, q_norm_, x, positions, n_heads_, saved.q_raw, saved.q_rstd, saved.q,
                     stream);
  project_and_rotate(wk_, k_norm_, x, positions, n_kv_heads_, saved.k_raw, saved.k_rstd, saved.k,
                     stream);
  saved.v = Tensor::empty({tokens, n_kv_heads_ * head_dim_}, x.dtype(), x.device());
  wv_.forward(x, saved.v, stream);
  saved.q = saved.q.view({batch, seq_len, n_heads_, head_dim_});
  saved.k = saved.k.view({batch, seq_len, n_kv_heads_, head_dim_});
  saved.v = saved.v.view({batch, seq_len, n_kv_heads_, head_dim_});
  saved.out = Tensor::empty({batch, seq_len, n_heads_, head_dim_}, x.dtype(), x.device());
  saved.lse = Tensor::empty({batch, n_heads_, seq_len}, accumulation_dtype(x.dtype()), x.device());
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  ops::attention_forward(saved.q, saved.k, saved.v, scale, saved.out, saved.lse, stream);
  wo_.forward(saved.out.view({tokens, n_heads_ * head_dim_}), y, stream);
  all_reduce_activations(tp_, y, stream);
}

void Attention::backward(const Tensor& x, const Tensor& positions, const AttentionSaved& saved,
                         const Tensor& dy, Tensor& dx, Stream& stream) const {
  const int64_t tokens = x.dim(0);
  const Tensor out = saved.out.view({tokens, n_heads_ * head_dim_});
  Tensor dout = Tensor::empty(saved.out.shape(), x.dtype(), x.device());
  Tensor dout_flat = dout.view({tokens, n_heads_ * head_dim_});
  wo_.backward(out, dy, &dout_flat, false, stream);
  Tensor dq = Tensor::empty(saved.q.shape(), x.dtype(), x.device());
  Tensor dk = Tensor::empty(saved.k.shape(), x.dtype(), x.device());
  Tensor dv = Tensor::empty(saved.v.shape(), x.dtype(), x.device());
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  ops::attention_backward(dout, saved.q, saved.k, saved.v, saved.out, saved.lse, scale, dq, dk, dv,
                          stream);
  wv_.backward(x, dv.view({tokens, n_kv_heads_ * head_dim_}), &dx, false, stream);
  rotate_and_project_backward(wq_, q_norm_, x, positions, n_heads_, saved.q_raw, saved.q_rstd, dq,
                              dx, stream);
  rotate_and_project_backward(wk_, k_norm_, x, positions, n_kv_heads_, saved.k_raw, saved.k_rstd,
                              dk, dx, stream);
  all_reduce_activations(tp_, dx, stream);
}

}  // namespace moe
