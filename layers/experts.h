// E routed SwiGLU experts with stacked weights w_gate, w_up [E,F,D] and w_down [E,D,F].
//
// Input rows arrive permuted: grouped by expert, counts[e] rows for expert e (host vector, the
// output of moe_sort_by_expert / moe_apply_capacity). Two implementations of the same math:
// - grouped: one GEMM per expert and weight over its contiguous block of rows (the production
//   path);
// - sequential: every row on its own with 1-row GEMMs, the reference the tests hold grouped to.
//
// Decisions:
// - The experts run concurrently (ops::concurrently), the ones with most rows first; each
//   expert's ops run on one thread, single-threaded. An expert writes only its own rows and its
//   own weight gradients, so nothing is summed across threads and the results do not depend on
//   the thread count.
// - Activations are kept transposed, one block per expert: h^T = W x^T. Expert e's gate and up
//   activations are then the two contiguous halves of one [2F, n] block, so the SwiGLU reads them
//   in place, and one workspace per layer holds every expert's (ExpertsSaved, and backward's
//   gradients of the same shapes). The weights stay three tensors as the checkpoint and Hugging
//   Face names them: gate and up are two GEMMs into the two halves. One GEMM over gate and up
//   stacked into a [2F, D] copy per step was measured no faster (single-threaded sgemm at the
//   quickstart's and the 100M model's expert shapes: within 3% of the two, what the copy costs).
// - Per expert, forward is 3 GEMMs and a SwiGLU; backward the SwiGLU's backward and 6 GEMMs (3
//   for a frozen model, which has no weight gradients).
//
// Parallel placement: expert parallelism gives EP rank p the experts [p E/ep, (p+1) E/ep) (a split
// of dim 0); with parallel.expert_tp each expert's FFN is also split over TP like the dense MLP
// (hidden units on dim 1 of w_gate/w_up, dim 2 of w_down), otherwise every TP rank holds the whole
// experts and runs them on its 1/tp of the tokens (duplicate token dropping), so its gradients
// are partial sums over TP. Under FSSDP (`owned` given) this rank keeps the experts it owns, any
// set of them (parameters placed by rows; with expert_tp its TP slice of each), and
// forward/backward run on the list of experts it holds this step (owned ones and copies) that the
// caller passes as `held`. While copies are still arriving (`in_flight`), forward runs the experts
// already present first, then waits for the rest: the owned experts' GEMMs cover the copies'
// transfer.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "layers/parameters.h"
#include "layers/swiglu_ffn.h"
#include "parallel/parallel_groups.h"

namespace moe {

enum class ExpertsImpl { grouped, sequential };

// What backward needs, for R permuted rows and F hidden units on this rank: expert e's rows
// [r, r + n) own gate_up's elements [2F r, 2F (r + n)), a [2F, n] block (gate^T above up^T), and
// hidden's [F r, F (r + n)), a [F, n] block (silu(gate) * up, transposed).
struct ExpertsSaved {
  Tensor gate_up, hidden;  // [2FR], [FR]
};

// FSSDP copies still in flight during forward: which held experts they are, and how to wait for
// them.
struct CopiesInFlight {
  std::vector<bool> arriving;  // per held expert
  std::function<void()> wait;
};

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
  // x[R,D] -> y[R,D]; forward allocates saved. counts has one entry per local expert, or per
  // expert of `held`, whose weights are used instead (those of `in_flight` once it has waited).
  void forward(const Tensor& x, const std::vector<int64_t>& counts, ExpertsSaved& saved, Tensor& y,
               Stream& stream, ExpertsImpl impl = ExpertsImpl::grouped,
               const std::vector<FfnWeights>* held = nullptr,
               const CopiesInFlight* in_flight = nullptr) const;
  // dx[R,D] is assigned.
  void backward(const Tensor& x, const std::vector<int64_t>& counts, const Tensor& dy,
                const ExpertsSaved& saved, Tensor& dx, Stream& stream,
                ExpertsImpl impl = ExpertsImpl::grouped,
                const std::vector<FfnWeights>* held = nullptr) const;

 private:
  // Calls fn(weights, first_row, rows) for every block of rows one expert call covers, the
  // experts concurrently, each expert's blocks in order; the experts of `in_flight` after it has
  // waited.
  void for_each_block(const char* name, const Tensor& x, const std::vector<int64_t>& counts,
                      ExpertsImpl impl, const std::vector<FfnWeights>* held,
                      const std::function<void(const FfnWeights&, int64_t, int64_t)>& fn,
                      const CopiesInFlight* in_flight = nullptr) const;

  int64_t d_model_, hidden_;
  Parameter &w_gate_, &w_up_, &w_down_;
};

}  // namespace moe
