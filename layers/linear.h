// y[N,out] = x[N,in] @ W[out,in]^T (+ b[out]): the projection every layer uses. `in` and `out`
// are global sizes; the placement says which block of W this rank holds (tensor_parallel.h), and a
// bias follows the weight's output split.
// The bias is added as ones[N,1] @ b[1,out] through the GEMM (beta = 1), so no extra kernel is
// needed; its gradient is the matching ones^T @ dy.
// Mixed precision: the weights are used in x's dtype (Parameter::for_input), and the gradients
// accumulate into the f32 gradient arena through the GEMM's f32 output.
#pragma once

#include <string>

#include "layers/parameters.h"

namespace moe {

// How a Linear starts when it is not the usual N(0, std^2) weight and zero bias (stitch layers).
struct LinearInit {
  Init weight = Init::normal;
  double weight_scale = 0.0;  // Parameter::init_scale of the weight
  bool bias = false;
  double bias_value = 0.0;
  bool weight_decay = true;  // for the weight; a bias is never decayed
};

class Linear {
 public:
  Linear(ParameterStore& store, const std::string& name, int64_t in, int64_t out, bool bias,
         double init_std, const Placement& placement = {});
  Linear(ParameterStore& store, const std::string& name, int64_t in, int64_t out,
         const LinearInit& init, const Placement& placement = {});

  void forward(const Tensor& x, Tensor& y, Stream& stream) const;
  // Parameter gradients accumulate; dx is assigned, or added to when accumulate_dx (several
  // projections of one input), or skipped when null.
  void backward(const Tensor& x, const Tensor& dy, Tensor* dx, bool accumulate_dx,
                Stream& stream) const;

  const Parameter& weight() const { return weight_; }

 private:
  Parameter& weight_;
  Parameter* bias_ = nullptr;
};

// Host tensor of ones[rows, 1] in dtype, for bias GEMMs.
Tensor ones_column(int64_t rows, DType dtype, Stream& stream);

}  // namespace moe
