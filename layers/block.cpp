#include "layers/block.h"

#include "kernels/ops.h"

namespace moe {

Block::Block(ParameterStore& store, int layer, const ModelConfig& model, const MoeConfig& moe,
             const ParallelGroups& groups, FssdpCoordinator* fssdp, int fssdp_layer)
    : norm_eps_(static_cast<float>(model.norm_eps)),
      attn_norm_(store.add("layers." + std::to_string(layer) + ".attn_norm.weight", {model.d_model},
                           Init::ones, 0.0, false)),
      ffn_norm_(store.add("layers." + std::to_string(layer) + ".ffn_norm.weight", {model.d_model},
                          Init::ones, 0.0, false)) {
  const std::string prefix = "layers." + std::to_string(layer);
  if (model.attention == AttentionKind::mla)
    latent_attention_ = std::make_unique<LatentAttention>(store, prefix + ".attn", model, groups);
  else
    attention_ = std::make_unique<Attention>(store, prefix + ".attn", model, groups);
  if (moe.is_moe_layer(layer))
    moe_ = std::make_unique<MoeLayer>(store, prefix + ".moe", moe, model.d_model, model.init_std,
                                      groups, fssdp, fssdp_layer);
  else
    mlp_ = std::make_unique<Mlp>(store, prefix + ".mlp", model.d_model, model.ffn_hidden,
                                 model.init_std, groups);
}

void Block::run_forward(const Tensor& x, const Tensor& positions, int64_t batch,
                        const CountSource& source, BlockSaved& saved, Tensor& out,
                        Stream& stream) const {
  const int64_t tokens = x.dim(0), d_model = x.dim(1);
  const DType dtype = x.dtype();
  saved.x = x;
  if (moe_) moe_->prefetch(dtype, saved.moe, stream);  // its copies travel during attention
  saved.attn_in = Tensor::empty({tokens, d_model}, dtype, x.device());
  saved.attn_rstd = Tensor::empty({tokens}, accumulation_dtype(dtype), x.device());
  ops::rmsnorm_forward(x, attn_norm_.compute, norm_eps_, saved.attn_in, saved.attn_rstd, stream);
  saved.h = Tensor::empty({tokens, d_model}, dtype, x.device());
  if (latent_attention_)
    latent_attention_->forward(saved.attn_in, positions, batch, saved.latent_attn, saved.h, stream);
  else
    attention_->forward(saved.attn_in, positions, batch, saved.attn, saved.h, stream);
  ops::add(saved.h, x, saved.h, stream);

  saved.ffn_in = Tensor::empty({tokens, d_model}, dtype, x.device());
  saved.ffn_rstd = Tensor::empty({tokens}, accumulation_dtype(dtype), x.device());
  ops::rmsnorm_forward(saved.h, ffn_norm_.compute, norm_eps_, saved.ffn_in, saved.ffn_rstd, stream);
  if (moe_) {
    moe_->forward(saved.ffn_in, tokens / batch, source, saved.moe, out, stream);
    const RouterSaved& router = saved.moe.router;
    int64_t rows = 0;
    for (int64_t r : saved.moe.plan.expert_counts) rows += r;
    saved.stats = {true, router.aux_loss, router.z_loss,    saved.moe.load, saved.moe.dropped,
                   rows, router.aux,      router.expert_ids};
  } else {
    saved.mlp = ffn_saved_for(tokens, mlp_->hidden(), dtype, x.device());
    mlp_->forward(saved.ffn_in, saved.mlp, out, stream);
  }
  ops::add(out, saved.h, out, stream);
  saved.complete = true;
}

void Block::forward(const Tensor& x, const Tensor& positions, int64_t batch, bool recompute,
                    bool training, BlockSaved& saved, Tensor& out, Stream& stream) const {
  run_forward(x, positions, batch, {nullptr, training}, saved, out, stream);
  if (!recompute) return;
  BlockStats stats = std::move(saved.stats);
  saved = BlockSaved{};
  saved.x = x;
  saved.stats = std::move(stats);
}

void Block::backward(const Tensor& positions, int64_t batch, const BlockSaved& saved,
                     const Tensor& dout, double loss_scale, Tensor& dx, Stream& stream) const {
  if (!saved.complete) {
    BlockSaved rebuilt;
    Tensor out = Tensor::empty(saved.x.shape(), saved.x.dtype(), saved.x.device());
    run_forward(saved.x, positions, batch, {&saved.stats.aux, false}, rebuilt, out, stream);
    backward(positions, batch, rebuilt, dout, loss_scale, dx, stream);
    return;
  }
  const Tensor& x = saved.x;
  const DType dtype = x.dtype();
  Tensor dffn_in = Tensor::empty(x.shape(), dtype, x.device());
  if (moe_)
    moe_->backward(saved.ffn_in, saved.moe, dout, loss_scale, dffn_in, stream);
  else
    mlp_->backward(saved.ffn_in, dout, saved.mlp, dffn_in, false, stream);
  Tensor dh = Tensor::empty(x.shape(), dtype, x.device());
  Tensor ffn_dweight = ffn_norm_.grad;
  ops::rmsnorm_backward(dffn_in, saved.h, ffn_norm_.compute, saved.ffn_rstd, dh, ffn_dweight,
                        stream);
  ops::add(dh, dout, dh, stream);

  Tensor dattn_in = Tensor::empty(x.shape(), dtype, x.device());
  if (latent_attention_)
    latent_attention_->backward(saved.attn_in, positions, saved.latent_attn, dh, dattn_in, stream);
  else
    attention_->backward(saved.attn_in, positions, saved.attn, dh, dattn_in, stream);
  Tensor attn_dweight = attn_norm_.grad;
  ops::rmsnorm_backward(dattn_in, x, attn_norm_.compute, saved.attn_rstd, dx, attn_dweight, stream);
  ops::add(dx, dh, dx, stream);
}

}  // namespace moe
