// E routed SwiGLU experts with stacked weights w_gate, w_up [E,F,D] and w_down [E,D,F].
//
// Input rows arrive permuted: grouped by expert, counts[e] rows for expert e (host vector, the
// output of moe_sort_by_expert / moe_apply_capacity). Two implementations of the same math:
// - grouped: one GEMM per expert over its contiguous block of rows (the production path);
// - sequential: every row on its own with 1-row GEMMs, the reference the tests hold grouped to.
#pragma once

#include <string>
#include <vector>

#include "layers/parameters.h"
#include "layers/swiglu_ffn.h"

namespace moe {

enum class ExpertsImpl { grouped, sequential };

class Experts {
 public:
  Experts(ParameterStore& store, const std::string& name, int num_experts, int64_t d_model,
          int64_t hidden, double init_std);

  int64_t hidden() const { return hidden_; }
  // saved holds [R,F] activations (see ffn_saved_for); y[R,D].
  void forward(const Tensor& x, const std::vector<int64_t>& counts, FfnSaved& saved, Tensor& y,
               Stream& stream, ExpertsImpl impl = ExpertsImpl::grouped) const;
  // dx[R,D] is assigned.
  void backward(const Tensor& x, const std::vector<int64_t>& counts, const Tensor& dy,
                const FfnSaved& saved, Tensor& dx, Stream& stream,
                ExpertsImpl impl = ExpertsImpl::grouped) const;

 private:
  FfnWeights expert(int e) const;  // views of expert e's slices
  // Calls fn(expert, first_row, rows) for every block of rows one expert call covers.
  template <class Fn>
  void for_each_block(const std::vector<int64_t>& counts, int64_t total_rows, ExpertsImpl impl,
                      Fn&& fn) const;

  int num_experts_;
  int64_t d_model_, hidden_;
  Parameter &w_gate_, &w_up_, &w_down_;
};

}  // namespace moe
