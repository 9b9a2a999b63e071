// Multi-head latent attention (DeepSeek-V2/V3, model.attention = mla; METHODS.md §7.3). Per token:
//   queries  q = W_q x, or W_qb RMSNorm(W_qa x) with a query latent; per head [nope | rope] parts
//   latent   [c | k_rope] = W_kva x; the key/value latent c is RMSNorm'd, k_rope is one RoPE key
//            per token shared by every head
//   per head [k_nope | v] = W_kvb RMSNorm(c);  key = [k_nope | rope(k_rope)]
//   out = W_o attention([q_nope | rope(q_rope)], key, v)
//
// Decisions:
// - The attention op is reused as it is, by composition: heads are gathered into [N*H, hd] rows
//   with ops::copy_columns, hd = max(qk_nope + qk_rope, v_head_dim), the narrower of q/k or v
//   zero-padded (zero columns change neither the scores nor the kept output columns). The shared
//   RoPE key goes to every head with group_broadcast, and its gradient is their group_sum.
// - RoPE uses the half-split pairing of the rest of the model; checkpoint/ permutes DeepSeek's
//   interleaved rows on import and back on export.
// - The latent norms use epsilon 1e-6 (DeepSeek's, whatever model.norm_eps is).
// - Softmax scale (qk_nope + qk_rope)^-0.5 times latent_softmax_factor (yarn's mscale_all_dim).
// - Tensor parallel: the heads are split (W_q/W_qb and W_kvb column parallel, W_o row parallel);
//   the latent projections and norms are replicated, their gradients partial sums (each rank's
//   heads), like the input gradient, which is all-reduced once.
#pragma once

#include <memory>
#include <string>

#include "config/model_config.h"
#include "layers/linear.h"
#include "parallel/parallel_groups.h"

namespace moe {

struct LatentAttentionSaved {
  Tensor q_latent, q_rstd, q_normed;     // query latent before/after its norm (q_lora_rank > 0)
  Tensor kv_latent, kv_rstd, kv_normed;  // [N, kv_lora_rank] before/after its norm
  Tensor query, key, value, out, lse;    // what the attention op read and wrote, [B,T,H,hd]
};

class LatentAttention {
 public:
  LatentAttention(ParameterStore& store, const std::string& name, const ModelConfig& config,
                  const ParallelGroups& groups = {});

  // x[N,D] with N = batch * seq_len; positions i32[N].
  void forward(const Tensor& x, const Tensor& positions, int64_t batch, LatentAttentionSaved& saved,
               Tensor& y, Stream& stream) const;
  // dx is assigned.
  void backward(const Tensor& x, const Tensor& positions, const LatentAttentionSaved& saved,
                const Tensor& dy, Tensor& dx, Stream& stream) const;

 private:
  // Queries [N*H, qk] (RoPE part rotated) from x; saves the query latent.
  Tensor project_queries(const Tensor& x, const Tensor& positions, LatentAttentionSaved& saved,
                         Stream& stream) const;
  // Rotates (or, backward, un-rotates) the RoPE columns of rows [N*H, qk] in place.
  void rotate_rope_columns(Tensor& rows, const Tensor& positions, bool backward,
                           Stream& stream) const;
  // A [N*H, hd] copy of columns [0, width) of rows, zero beyond, or rows itself when width = hd.
  Tensor padded(const Tensor& rows, int64_t width, Stream& stream) const;
  // The value columns [N*H, v_head_dim] of the attention output (a view when nothing is padded).
  Tensor value_columns(const Tensor& out, Stream& stream) const;

  Communicator* tp_;
  int64_t heads_, nope_, rope_, v_dim_, qk_dim_, hd_;  // heads on this rank; sizes per head
  int64_t kv_rank_;
  float softmax_scale_, rope_scale_;
  Tensor inv_freq_;  // RoPE frequencies, f64 [qk_rope_head_dim / 2] on the store's device
  std::unique_ptr<Linear> wq_, wq_a_, wq_b_;
  Parameter* q_a_norm_ = nullptr;
  Linear wkv_a_, wkv_b_, wo_;
  Parameter& kv_a_norm_;
};

}  // namespace moe
