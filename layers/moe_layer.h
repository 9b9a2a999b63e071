// The MoE feed-forward layer: router -> sort by expert (-> capacity) -> permute -> experts ->
// unpermute -> gate-weighted combine, plus the shared experts (DESIGN.md §3, "MoE layer flow").
//
// Decisions:
// - Dropless unless moe.capacity_factor > 0; then each expert keeps at most
//   ceil(k N / E * capacity_factor) assignments, by moe.drop_policy. A dropped assignment gets a
//   zero expert output (so zero gate gradient); the block's residual carries the token.
// - Per-expert counts come back to the host (they size the expert GEMMs and the all-to-all) and
//   are reported as the layer's load: assignments per expert before dropping, and how many were
//   dropped.
// - moe.shared_expert_gate (Qwen2-MoE): the shared experts' output is scaled per token by
//   sigmoid(x . w), w a learned [1, D] weight, before it joins the routed experts' output.
// - Under expert or tensor parallelism the TokenDispatcher moves the permuted rows to the ranks
//   that hold their experts and back; with ep = tp = 1 it only reorders them.
// - FSSDP or LLEP (a coordinator given): this rank owns the experts the coordinator assigns it;
//   forward plans where the experts are held from every rank's counts (plan_forward), then
//   copies the plan's replicas from their owners (sparse all-gather) into buffers that
//   live in MoeSaved until backward, which sums their gradients onto the owners (sparse
//   reduce-scatter) and drops them. The owners' gradients then go through the usual expert
//   gradient sync, so the optimizer sees what expert parallelism would give it. With
//   fssdp.rematerialize the copies are dropped right after forward and gathered again in
//   backward: one layer's copies at a time, for a second all-gather. The forward all-gather runs
//   behind compute: started by prefetch() before the block's attention when the plan is the
//   step's (fssdp.calibrate: false), else right after planning, behind the token dispatch and the
//   owned experts' GEMMs (Experts::forward runs the copies last).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/experts.h"
#include "layers/mlp.h"
#include "layers/router.h"
#include "layers/token_dispatcher.h"
#include "parallel/fssdp/coordinator.h"

namespace moe {

struct MoeSaved {
  RouterSaved router;
  std::vector<int64_t> load;  // assignments per expert before capacity
  int64_t dropped = 0;
  DispatchPlan plan;
  Tensor permuted;  // the local experts' input rows, expert-major [R_local,D]
  ExpertsSaved experts;
  Tensor expert_out, y_slots;  // [R_local,D], [N*k,D]
  FfnSaved shared;
  Tensor shared_out, shared_gate;  // before the gate [N,D], gate logits [N,1] (gated only)
  ExpertPlan holders;              // FSSDP: where the experts were held in forward
  std::vector<FfnWeights> held;    // FSSDP: the held experts' weights (owned ones and copies)
  std::shared_ptr<PendingTransfers> arriving;  // FSSDP: copies of `held` still in flight
};

class MoeLayer {
 public:
  // fssdp: the coordinator of parallel.experts: fssdp and this layer's index among MoE layers.
  MoeLayer(ParameterStore& store, const std::string& name, MoeConfig config, int64_t d_model,
           double init_std, const ParallelGroups& groups = {}, FssdpCoordinator* fssdp = nullptr,
           int fssdp_layer = 0);

  // FSSDP with the step's plan fixed before routing: starts gathering this layer's copies into
  // saved, to travel while the block's attention runs; forward waits for them. Otherwise nothing.
  void prefetch(DType dtype, MoeSaved& saved, Stream& stream) const;
  void forward(const Tensor& x, int64_t seq_len, const CountSource& source, MoeSaved& saved,
               Tensor& y, Stream& stream, ExpertsImpl impl = ExpertsImpl::grouped) const;
  // dx is assigned.
  void backward(const Tensor& x, const MoeSaved& saved, const Tensor& dy, double loss_scale,
                Tensor& dx, Stream& stream, ExpertsImpl impl = ExpertsImpl::grouped) const;
  const Router& router() const { return router_; }
  const Experts& experts() const { return experts_; }

 private:
  // The weights of the experts this rank holds in `plan` into held, owned ones and buffers for
  // the copies, whose gathering from their owners it starts (done once the result is waited for;
  // null when nothing moves).
  std::shared_ptr<PendingTransfers> start_materialize(const ExpertPlan& plan, DType dtype,
                                                      std::vector<FfnWeights>& held,
                                                      Stream& stream) const;
  // Starts summing the copies' gradients onto their owners (held: forward's, copies given zero
  // gradients); the coordinator finishes it behind the rest of backward.
  void reduce_copies(const ExpertPlan& plan, const std::vector<FfnWeights>& held,
                     Stream& stream) const;

  MoeConfig config_;
  FssdpCoordinator* fssdp_;
  int fssdp_layer_;
  Router router_;
  Experts experts_;
  TokenDispatcher dispatcher_;
  std::unique_ptr<Mlp> shared_;
  std::unique_ptr<Linear> shared_gate_;  // moe.shared_expert_gate: logits = x Wg^T, Wg [1,D]
};

}  // namespace moe
