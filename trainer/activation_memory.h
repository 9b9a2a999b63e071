// The activation memory of one micro-batch on one rank, counted from what the layers keep between
// forward and backward (the Saved structs of layers/model.h, block.h, attention.h,
// latent_attention.h, moe_layer.h,
// router.h, token_dispatcher.h, swiglu_ffn.h) and what their backward allocates on top
// (moe-train --plan, trainer/memory_plan.h).
//
// Decisions:
// - Tensors are counted at their requested sizes, as the layers allocate them; a view (a narrow,
//   a reshape) is no new memory. Kernel scratch outside tensors (host vectors of the CPU kernels,
//   a GPU library's workspace) is not counted.
// - The peak is the largest of the backward phases: the LM head's (dlogits) while every block
//   still holds its activations, then each block's, counting from the last, with the blocks below
//   it still held (backward frees a block's activations once its backward is done). Forward never
//   holds more than the backward phase that follows it.
// - Multi-token prediction modules run backward first, the last first: each its head, then its
//   block, with every main block still held; then the LM head, with their gradient at its input.
// - Under recompute a block keeps its input alone; its backward first rebuilds all of its
//   activations (and its output, which nothing reads), so one block's full set is held then.
// - Precision bf16 stores activations in bf16, except what stays f32: the RMSNorm rstd, the
//   attention lse, everything of the router (logits, scores, gates, lse and their gradients) and
//   the LM-head logits, whose backward adds a bf16 copy of dlogits to the f32 one.
// - Routed rows are an estimate given by the caller (a capacity bound or the balanced
//   expectation); imbalanced routing can exceed the expectation.
#pragma once

#include <cstdint>
#include <vector>

namespace moe {

// One rank's shapes for one micro-batch; sizes are this rank's shares (heads, hidden sizes and
// vocabulary over TP, experts over EP).
struct ActivationShape {
  int64_t batch = 0, seq_len = 0;
  int64_t d_model = 0, vocab = 0;
  int64_t q_heads = 0, kv_heads = 0, head_dim = 0;
  bool qk_norm = false, qk_norm_per_head = true;
  bool qkv_bias = false;  // a bias adds a column of ones [N,1] while q, k or v runs backward
  // Multi-head latent attention: head_dim is then the attention op's (padded) width, and these
  // the latent ranks (q_rank 0: no query latent) and the per-head parts.
  bool mla = false;
  int64_t q_rank = 0, kv_rank = 0, nope = 0, rope = 0, v_dim = 0;
  int64_t ffn_hidden = 0;        // the dense MLP's
  std::vector<bool> moe_blocks;  // every block's, the multi-token prediction modules' last
  int64_t mtp_depth = 0;
  // MoE layers.
  int64_t experts = 0, top_k = 0;
  int64_t expert_hidden = 0;
  int64_t shared_hidden = 0;  // the shared experts' (0: none)
  bool shared_gate = false;
  int64_t routed_rows = 0;  // the rows this rank routes (tokens x top_k, less any dropped)
  int64_t expert_rows = 0;  // the rows this rank's experts process
  int64_t tp = 1, ep = 1;   // group sizes: the dispatcher's buffers depend on them
  bool expert_tp = false;
  int64_t expert_copies = 0;   // FSSDP: copies of experts held per layer
  bool rematerialize = false;  // FSSDP: copies gathered again in backward
  bool bf16 = false;
};

struct ActivationPeak {
  int64_t bytes = 0;
  int64_t fssdp_copies = 0;  // of which FSSDP expert copies and their gradients
  int block = -1;  // the block whose backward is the peak (an MTP module's head counts as its
                   // block's); -1: the LM head's
};

ActivationPeak activation_peak(const ActivationShape& shape, bool recompute);

}  // namespace moe
