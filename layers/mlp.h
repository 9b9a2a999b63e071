// A SwiGLU MLP module: the dense FFN of a block, and the shared experts of an MoE layer (several
// shared experts are one MLP whose hidden size is their sum: the sum of their outputs is exactly
// that MLP's output, as in DeepSeekMoE).
#pragma once

#include <string>

#include "layers/parameters.h"
#include "layers/swiglu_ffn.h"

namespace moe {

class Mlp {
 public:
  Mlp(ParameterStore& store, const std::string& name, int64_t d_model, int64_t hidden,
      double init_std);

  int64_t hidden() const { return hidden_; }
  void forward(const Tensor& x, FfnSaved& saved, Tensor& y, Stream& stream) const;
  void backward(const Tensor& x, const Tensor& dy, const FfnSaved& saved, Tensor& dx,
                bool accumulate_dx, Stream& stream) const;

 private:
  FfnWeights weights() const;
  int64_t hidden_;
  Parameter &w_gate_, &w_up_, &w_down_;
};

}  // namespace moe
