// One pre-norm decoder block: h = x + attn(norm1(x)); out = h + ffn(norm2(h)), where attn is
// grouped-query or multi-head latent attention and ffn a dense SwiGLU MLP or an MoE layer.
//
// Activation recompute: with `recompute`, forward keeps only the block input and the MoE
// statistics, and backward runs forward again to rebuild the rest. Forward is deterministic (the
// router's tie-breaking included), so gradients are identical either way.
#pragma once

#include <memory>
#include <string>

#include "layers/attention.h"
#include "layers/latent_attention.h"
#include "layers/moe_layer.h"

namespace moe {

// What a block measured in forward, kept even when its activations are dropped.
struct BlockStats {
  bool is_moe = false;
  double aux_loss = 0, z_loss = 0;
  std::vector<int64_t> load;
  int64_t dropped = 0;
  int64_t expert_rows = 0;  // token rows this rank's experts processed (its expert work)
  AuxCounts aux;            // what the load-balancing loss was computed from, reused by recompute
  Tensor expert_ids;        // [N,k] i32: each token's experts, for counts over some of the tokens
};

struct BlockSaved {
  Tensor x;  // block input: the only activation kept under recompute
  bool complete = false;
  Tensor attn_in, attn_rstd, h, ffn_in, ffn_rstd;
  AttentionSaved attn;
  LatentAttentionSaved latent_attn;
  MoeSaved moe;
  FfnSaved mlp;
  BlockStats stats;
};

class Block {
 public:
  // fssdp: parallel.experts: fssdp's coordinator (null: experts by EP), fssdp_layer this block's
  // index among the MoE layers.
  Block(ParameterStore& store, int layer, const ModelConfig& model, const MoeConfig& moe,
        const ParallelGroups& groups = {}, FssdpCoordinator* fssdp = nullptr, int fssdp_layer = 0);

  bool is_moe() const { return moe_ != nullptr; }
  const MoeLayer* moe() const { return moe_.get(); }
  // training: a forward whose backward follows (global-batch counts enter the step's buffer).
  void forward(const Tensor& x, const Tensor& positions, int64_t batch, bool recompute,
               bool training, BlockSaved& saved, Tensor& out, Stream& stream) const;
  // dx is assigned; dout and dx may not alias.
  void backward(const Tensor& positions, int64_t batch, const BlockSaved& saved, const Tensor& dout,
                double loss_scale, Tensor& dx, Stream& stream) const;

 private:
  void run_forward(const Tensor& x, const Tensor& positions, int64_t batch,
                   const CountSource& source, BlockSaved& saved, Tensor& out, Stream& stream) const;

  float norm_eps_;
  Parameter &attn_norm_, &ffn_norm_;
  std::unique_ptr<Attention> attention_;  // one of the two, as model.attention says
  std::unique_ptr<LatentAttention> latent_attention_;
  std::unique_ptr<Mlp> mlp_;
  std::unique_ptr<MoeLayer> moe_;
};

}  // namespace moe
