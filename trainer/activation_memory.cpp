// See activation_memory.h. Each count names the tensors it stands for as the layers call them.
#include "trainer/activation_memory.h"

#include <algorithm>

namespace moe {

namespace {

constexpr int64_t kF32 = 4, kI32 = 4;

struct Counter {
  const ActivationShape& s;
  int64_t n = s.batch * s.seq_len;  // tokens
  int64_t a = s.bf16 ? 2 : 4;       // bytes of an activation element
  int64_t row = n * s.d_model * a;  // one [N, D] activation
  int64_t q = s.q_heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  int64_t copy_weights = s.expert_copies * 3 * s.expert_hidden * s.d_model * a;

  // AttentionSaved: q, k, v, out, lse; with QK-norm q_raw, k_raw and their rstd.
  int64_t attention_kept() const {
    int64_t bytes = n * (2 * q + 2 * kv) * a + n * s.q_heads * kF32;
    // LatentAttentionSaved adds the latents before and after their norms, and their rstd.
    if (s.mla) bytes += 2 * n * (s.q_rank + s.kv_rank) * a + (s.q_rank > 0 ? 2 : 1) * n * kF32;
    if (s.qk_norm)
      bytes +=
          n * (q + kv) * a + (s.qk_norm_per_head ? n * (s.q_heads + s.kv_heads) : 2 * n) * kF32;
    return bytes;
  }
  // MoeSaved: the router's tensors, the dispatch plan's indices, the experts' rows, the slots, the
  // shared experts, and (kept until backward) the FSSDP copies.
  int64_t moe_kept() const {
    const int64_t k = s.top_k, rl = s.expert_rows;
    // logits, scores [N,E], probs, ids [N,k], lse [N]
    int64_t bytes = 2 * n * s.experts * kF32 + n * k * (kF32 + kI32) + n * kF32;
    bytes += 2 * s.routed_rows * kI32 + (reorders() ? rl * kI32 : 0);  // share slots, gather, order
    bytes += 2 * rl * s.d_model * a + 3 * rl * s.expert_hidden * a;    // permuted, out, FfnSaved
    bytes += n * k * s.d_model * a;                                    // y_slots
    if (s.shared_hidden > 0)
      bytes += 3 * n * s.shared_hidden * a + row + (s.shared_gate ? n * a : 0);
    if (!s.rematerialize) bytes += copy_weights;
    return bytes;
  }
  // BlockSaved: x, attn_in, h, ffn_in, two rstd, the attention's and the FFN's.
  int64_t block_kept(bool moe) const {
    return 4 * row + 2 * n * kF32 + attention_kept() +
           (moe ? moe_kept() : 3 * n * s.ffn_hidden * a);
  }
  // Model::Saved: inputs, targets, positions, the last block's output, the final norm's output and
  // rstd, the logits and their lse.
  int64_t model_kept() const {
    return 3 * n * kI32 + 2 * row + n * kF32 + n * s.vocab * kF32 + n * kF32;
  }
  // Model::MtpSaved, per module: its shifted ids and targets (and the targets' host copy); the
  // MtpInput's embedding, joined halves and two rstd; its head's input (the block's output),
  // normed output, rstd, logits and lse.
  int64_t mtp_kept() const { return 3 * n * kI32 + 5 * row + 4 * n * kF32 + n * s.vocab * kF32; }
  // Model::head_backward (the LM head's or a module's): dlogits (f32, and its bf16 copy), dnormed,
  // dx.
  int64_t head_backward() const { return n * s.vocab * (kF32 + (s.bf16 ? 2 : 0)) + 2 * row; }
  // The dispatcher reorders arrived rows to expert-major order (and back) when rows come from
  // other EP ranks or are gathered over TP (TokenDispatcher::reorders).
  bool gathers() const { return s.expert_tp && s.tp > 1; }
  bool reorders() const { return s.ep > 1 || gathers(); }
  // TokenDispatcher::combine_backward, in rows: drows (all routed rows), then the exchange's
  // arrivals, the TP gather's padded block and output, the reorder's result.
  int64_t combine_backward_rows() const {
    const int64_t r = s.routed_rows, rl = s.expert_rows, in = arrived_rows();
    const int64_t exchanged = s.ep > 1 ? in : 0;
    const int64_t gather = gathers() ? exchanged + in + rl : 0;
    const int64_t reorder = reorders() ? (gathers() ? rl : exchanged) + rl : 0;
    return r + std::max({exchanged, gather, reorder});
  }
  // TokenDispatcher::dispatch_backward, in rows: the reorder back to arrival order, the TP
  // reduce-scatter's block, the exchange back, and the TP all-gather of every share (padded block
  // and output, then the rows in slot order).
  int64_t dispatch_backward_rows() const {
    const int64_t r = s.routed_rows, rl = s.expert_rows, in = arrived_rows();
    const int64_t reordered = reorders() ? rl : 0;
    const int64_t held = gathers() ? in : reordered;
    const int64_t back = s.ep > 1 ? divide_up(r, s.tp) : 0;
    return std::max(reordered + (gathers() ? in : 0), held + back + (s.tp > 1 ? 2 * r : 0));
  }
  // Rows one rank receives from the EP exchange: with expert_tp the TP ranks then gather theirs.
  int64_t arrived_rows() const {
    return gathers() ? divide_up(s.expert_rows, s.tp) : s.expert_rows;
  }
  static int64_t divide_up(int64_t a, int64_t b) { return (a + b - 1) / b; }
  // MoeLayer::backward: dy_slots and dprobs (and the FSSDP copies' gradients, and the copies when
  // rematerialized) first; then combine_backward; then the experts' output gradient (combine's
  // rows themselves when nothing reorders) and dpermuted with the largest call after them: the
  // experts' backward (its workspace: [3F] per row of every expert), dispatch_backward, the
  // router's backward or the shared experts'.
  int64_t moe_backward() const {
    const int64_t k = s.top_k, rl = s.expert_rows, d = s.d_model * a;
    const int64_t base = n * k * d + n * k * kF32 + copy_weights * (s.rematerialize ? 2 : 1);
    const int64_t expert_out = (reorders() ? rl : s.routed_rows) * d, dpermuted = rl * d;
    const int64_t expert = 3 * rl * s.expert_hidden * a;
    // The router's backward: dscores, dlogits, dlse; in bf16 also its input widened to f32, the
    // f32 gradient of that input and its bf16 rounding.
    const int64_t router =
        2 * n * s.experts * kF32 + n * kF32 + (s.bf16 ? n * s.d_model * (2 * kF32 + a) : 0);
    // The shared experts: dshared and dgate when gated, the FFN's [N,F] gradients, and over TP
    // the partial dx that is all-reduced before it is added.
    const int64_t shared = s.shared_hidden == 0
                               ? 0
                               : (s.shared_gate ? row + n * a : 0) + 3 * n * s.shared_hidden * a +
                                     (s.tp > 1 ? row : 0);
    return base + std::max(combine_backward_rows() * d,
                           expert_out + dpermuted +
                               std::max({expert, dispatch_backward_rows() * d, router, shared}));
  }
  // Attention::backward: dout, dq, dk, dv, then q's RoPE adjoint (and QK-norm's, and the bias's
  // ones).
  int64_t attention_backward() const {
    if (s.mla) return latent_attention_backward();
    return n * (2 * q + 2 * kv) * a + n * q * a * (s.qk_norm ? 2 : 1) + (s.qkv_bias ? n * a : 0);
  }
  // LatentAttention::backward: the output's value columns and their gradient (and its padded
  // copy), dquery, dkey, dvalue; dkv, the RoPE key's gradient per head and summed; the latent's
  // gradients; the queries' (a narrow copy when padded, the RoPE columns, the query latent's).
  int64_t latent_attention_backward() const {
    const int64_t h = s.q_heads, hd = s.head_dim, qk = s.nope + s.rope;
    int64_t elements = 2 * h * s.v_dim + (hd > s.v_dim ? h * (s.v_dim + hd) : 0) + 3 * h * hd;
    elements += h * (s.nope + s.v_dim) + h * s.rope + s.rope;
    elements += 2 * s.kv_rank + s.kv_rank + s.rope;
    elements += (hd > qk ? h * qk : 0) + h * s.rope + 2 * s.q_rank;
    return n * elements * a;
  }
  // Block::backward with the gradient that arrives and the one it returns; dffn_in, dh and
  // dattn_in live to its end. Under recompute the rebuilt activations come first.
  int64_t block_backward(bool moe, bool recompute) const {
    const int64_t ffn = row + (moe ? moe_backward() : 3 * n * s.ffn_hidden * a);
    const int64_t attention = 3 * row + attention_backward();
    return 2 * row + (recompute ? block_kept(moe) : 0) + std::max(ffn, attention);
  }
};

}  // namespace

ActivationPeak activation_peak(const ActivationShape& shape, bool recompute) {
  const Counter c{shape};
  const int blocks = static_cast<int>(shape.moe_blocks.size());
  const int main_blocks = blocks - static_cast<int>(shape.mtp_depth);
  std::vector<int64_t> kept(blocks);
  int64_t held = c.model_kept() + shape.mtp_depth * c.mtp_kept();
  for (int i = 0; i < blocks; ++i) {
    kept[i] = recompute ? c.row : c.block_kept(shape.moe_blocks[i]);
    held += kept[i];
  }
  ActivationPeak peak;
  const auto consider = [&peak](int64_t bytes, int block) {
    if (bytes > peak.bytes) peak = {bytes, 0, block};
  };
  for (int i = blocks - 1; i >= main_blocks; --i) {
    const int64_t from_next = i < blocks - 1 ? c.row : 0;  // the next module's gradient
    consider(held + from_next + c.head_backward(), i);
    consider(held + from_next + c.block_backward(shape.moe_blocks[i], recompute), i);
    held -= kept[i] + c.mtp_kept();
  }
  consider(held + (shape.mtp_depth > 0 ? c.row : 0) + c.head_backward(), -1);
  for (int i = main_blocks - 1; i >= 0; --i) {
    consider(held + c.block_backward(shape.moe_blocks[i], recompute), i);
    held -= kept[i];
  }
  const int64_t moe_layers = std::count(shape.moe_blocks.begin(), shape.moe_blocks.end(), true);
  if (moe_layers > 0 && shape.expert_copies > 0)
    peak.fssdp_copies = c.copy_weights * (shape.rematerialize || recompute ? 2 : moe_layers + 1);
  return peak;
}

}  // namespace moe
