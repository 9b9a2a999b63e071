// Causal grouped-query self-attention with rotary positions (Llama family): q, k, v projections
// (optional bias), optional RMSNorm over each query and key head (QK-norm, applied before RoPE as
// in Qwen3/OLMoE), RoPE (frequencies scaled as model.rope_scaling says, layers/rope_frequencies.h),
// the attention op and the output projection.
//
// Tensor parallel (Megatron): each TP rank holds n_heads/tp query heads and n_kv_heads/tp kv heads
// (column-parallel q, k, v), so grouped-query pairs stay on one rank; the row-parallel output
// projection's partial sums and the input gradient's partial sums are all-reduced over TP. The
// QK-norm weights are shared by all heads, so each rank's gradient of them is partial. With
// model.qk_norm_scope = projection (OLMoE) the norm runs over the whole q or k projection, with a
// weight per element of it (tensor parallelism is then refused: it would split the rows).
#pragma once

#include <optional>
#include <string>

#include "config/model_config.h"
#include "layers/linear.h"
#include "parallel/parallel_groups.h"

namespace moe {

struct AttentionSaved {
  Tensor q_raw, k_raw;    // projections before QK-norm, [N, H*hd] (QK-norm only)
  Tensor q_rstd, k_rstd;  // [N*H], or [N] over whole projections (QK-norm only)
  Tensor q, k, v;         // what attention read, [B,T,H,hd]
  Tensor out, lse;        // attention output [B,T,Hq,hd], lse [B,Hq,T]
};

class Attention {
 public:
  Attention(ParameterStore& store, const std::string& name, const ModelConfig& config,
            const ParallelGroups& groups = {});

  // x[N,D] with N = batch * seq_len; positions i32[N].
  void forward(const Tensor& x, const Tensor& positions, int64_t batch, AttentionSaved& saved,
               Tensor& y, Stream& stream) const;
  // dx is assigned.
  void backward(const Tensor& x, const Tensor& positions, const AttentionSaved& saved,
                const Tensor& dy, Tensor& dx, Stream& stream) const;

 private:
  // The rows QK-norm normalizes: [N*heads, hd] per head, [N, heads*hd] per projection.
  Shape norm_rows(int64_t tokens, int64_t heads) const;
  // Projection -> (QK-norm) -> RoPE for q or k; raw/rstd stay undefined without QK-norm.
  void project_and_rotate(const Linear& proj, const Parameter* norm, const Tensor& x,
                          const Tensor& positions, int64_t heads, Tensor& raw, Tensor& rstd,
                          Tensor& rotated, Stream& stream) const;
  // The adjoint of project_and_rotate from drotated; adds to dx.
  void rotate_and_project_backward(const Linear& proj, const Parameter* norm, const Tensor& x,
                                   const Tensor& positions, int64_t heads, const Tensor& raw,
                                   const Tensor& rstd, const Tensor& drotated, Tensor& dx,
                                   Stream& stream) const;

  Communicator* tp_;
  int64_t n_heads_, n_kv_heads_, head_dim_;  // heads on this rank
  bool norm_per_head_;                       // QK-norm rows: heads, or whole projections
  Tensor inv_freq_;   // RoPE frequencies, f64 [head_dim/2] on the store's device
  float rope_scale_;  // multiplies RoPE's cos and sin (yarn's attention factor)
  float norm_eps_;
  Linear wq_, wk_, wv_, wo_;
  Parameter* q_norm_ = nullptr;
  Parameter* k_norm_ = nullptr;
};

}  // namespace moe
