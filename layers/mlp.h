// A SwiGLU MLP module: the dense FFN of a block, and the shared experts of an MoE layer (several
// shared experts are one MLP whose hidden size is their sum: the sum of their outputs is exactly
// that MLP's output, as in DeepSeekMoE).
//
// Tensor parallel (Megatron): w_gate and w_up are column parallel, w_down row parallel, so each TP
// rank runs hidden/tp of the hidden units; the output and the input gradient are all-reduced.
#pragma once

#include <string>

#include "layers/parameters.h"
#include "layers/swiglu_ffn.h"
#include "parallel/parallel_groups.h"

namespace moe {

class Mlp {
 public:
  // hidden is the global hidden size.
  Mlp(ParameterStore& store, const std::string& name, int64_t d_model, int64_t hidden,
      double init_std, const ParallelGroups& groups = {});

  int64_t hidden() const { return hidden_; }  // on this rank
  void forward(const Tensor& x, FfnSaved& saved, Tensor& y, Stream& stream) const;
  void backward(const Tensor& x, const Tensor& dy, const FfnSaved& saved, Tensor& dx,
                bool accumulate_dx, Stream& stream) const;

 private:
  FfnWeights weights() const;
  Communicator* tp_;
  int64_t hidden_;
  Parameter &w_gate_, &w_up_, &w_down_;
};

}  // namespace moe
