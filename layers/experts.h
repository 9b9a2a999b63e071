// E routed SwiGLU experts with stacked weights w_gate, w_up [E,F,D] and w_down [E,D,F].
//
// Input rows arrive permuted: grouped by expert, counts[e] rows for expert e (host vector, the
// output of moe_sort_by_expert / moe_apply_capacity). Two implementations of the same math:
// - grouped: one GEMM per expert over its contiguous block of rows (the production path);
// - sequential: every row on its own with 1-row GEMMs, the reference the tests hold grouped to.
//
// Parallel placement: expert parallelism gives EP rank p the experts [p E/ep, (p+1) E/ep) (a split
// of dim 0); with parallel.expert_tp each expert's FFN is also split over TP like the dense MLP
// (hidden units on dim 1 of w_gate/w_up, dim 2 of w_down), otherwise every TP rank holds the whole
// experts and runs them on its 1/tp of the tokens (duplicate token dropping), so its gradients
// are partial sums over TP. Under FSSDP (`owned` given) this rank keeps the experts it owns, any
// set of them (parameters placed by rows), and forward/backward run on the list of experts it
// holds this step (owned ones and copies) that the caller passes as `held`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "layers/parameters.h"
#include "layers/swiglu_ffn.h"
#include "parallel/parallel_groups.h"

namespace moe {

enum class ExpertsImpl { grouped, sequential };

class Experts {
 public:
  // num_experts and hidden are global sizes.
  Experts(ParameterStore& store, const std::string& name, int num_experts, int64_t d_model,
          int64_t hidden, double init_std, const ParallelGroups& groups = {},
          const std::optional<std::vector<int64_t>>& owned = std::nullopt);

  int num_local_experts() const { return static_cast<int>(w_gate_.shape[0]); }
  // The three stacked weights (FSSDP moves their rows between owners).
  std::vector<Parameter*> parameters() const { return {&w_gate_, &w_up_, &w_down_}; }
  int64_t hidden() const { return hidden_; }  // on this rank
  int64_t d_model() const { return d_model_; }
  FfnWeights expert(int e) const;  // views of local expert e's slices (values and gradients)
  // saved holds [R,F] activations (see ffn_saved_for); y[R,D]. counts has one entry per local
  // expert, or per expert of `held`, whose weights are used instead.
  void forward(const Tensor& x, const std::vector<int64_t>& counts, FfnSaved& saved, Tensor& y,
               Stream& stream, ExpertsImpl impl = ExpertsImpl::grouped,
               const std::vector<FfnWeights>* held = nullptr) const;
  // dx[R,D] is assigned.
  void backward(const Tensor& x, const std::vector<int64_t>& counts, const Tensor& dy,
                const FfnSaved& saved, Tensor& dx, Stream& stream,
                ExpertsImpl impl = ExpertsImpl::grouped,
                const std::vector<FfnWeights>* held = nullptr) const;

 private:
  // Calls fn(expert, first_row, rows) for every block of rows one expert call covers.
  template <class Fn>
  void for_each_block(const std::vector<int64_t>& counts, int64_t total_rows, ExpertsImpl impl,
                      int experts, Fn&& fn) const;

  int64_t d_model_, hidden_;
  Parameter &w_gate_, &w_up_, &w_down_;
};

}  // namespace moe
