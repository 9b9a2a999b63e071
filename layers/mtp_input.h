// The input of DeepSeek-V3's multi-token prediction module k (model.mtp_depth; METHODS.md §7.5):
// h' = W_eh [RMSNorm_e(emb); RMSNorm_h(h)], from the embedding of the token k ahead and the
// previous depth's hidden states (the main model's final-normed output for k = 1). The module's
// decoder block, its final norm and the shared LM head are the model's (layers/model.h).
//
// Decisions:
// - The two normed halves are copied side by side into one [N, 2D] row block for one GEMM with
//   W_eh [D, 2D], whose columns take the embedding half first (DeepSeek's and transformers' order).
// - Replicated over tensor parallelism: its inputs and output are whole on every TP rank, and so
//   are its gradients.
#pragma once

#include <string>

#include "layers/linear.h"

namespace moe {

struct MtpInputSaved {
  Tensor emb, h;            // the inputs, [N, D]
  Tensor emb_rstd, h_rstd;  // their norms' statistics
  Tensor joined;            // [RMSNorm_e(emb) | RMSNorm_h(h)], [N, 2D]
};

class MtpInput {
 public:
  // name: the module's layer prefix, layers.{n_layers + k - 1}.
  MtpInput(ParameterStore& store, const std::string& name, int64_t d_model, double norm_eps,
           double init_std);

  void forward(const Tensor& emb, const Tensor& h, MtpInputSaved& saved, Tensor& out,
               Stream& stream) const;
  // demb and dh are assigned.
  void backward(const MtpInputSaved& saved, const Tensor& dout, Tensor& demb, Tensor& dh,
                Stream& stream) const;

 private:
  int64_t d_model_;
  float norm_eps_;
  Parameter &enorm_, &hnorm_;
  Linear eh_proj_;
};

}  // namespace moe
