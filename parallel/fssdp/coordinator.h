// What the ranks of one FSSDP group (the EP group under parallel.experts: fssdp) agree on for one
// model: which rank owns each expert of each MoE layer (resharding.h), and where this step copies
// them (materialization.h) from the load history of every layer.
//
// Decisions:
// - Every rank keeps its own coordinator and feeds it the same global loads (the trainer sums
//   them over all data-parallel ranks), so plans agree without being communicated.
// - The first owners come from shard_experts with no load: a balanced deal of all layers'
//   experts (under LLEP: expert parallelism's contiguous blocks, for good). Until a step has
//   recorded loads, the predicted plan copies nothing.
// - MoE layers are numbered among themselves (0 .. layers - 1), not by block.
// - Calibration (fssdp.calibrate, METHODS.md §1.4): each forward plans its copies again from the
//   tokens its router has just sent to each expert, instead of from the previous steps' mean.
//   The dispatcher gathers every rank's counts anyway, so an exact plan costs no extra
//   collective; but its copies can only be gathered after routing, where the step's predicted
//   plan (planned_before_routing) lets a block gather them during its attention.
//   Routers that move from step to step (balancing losses against a skew) then stay balanced.
//   With exact loads the holders can also take token quotas that even out the ranks
//   (ExpertPlan::balance: the dispatcher computes them, balanced_split.h) instead of the even,
//   local-first split.
// - Overlap: the coordinator keeps the one copies' reduce that runs behind backward (defer), so
//   that MoE layers, which are const during forward and backward, can start it and a later one,
//   or the model at the end of backward, can finish it.
#pragma once

#include <optional>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/fssdp/least_loaded.h"
#include "parallel/fssdp/load_history.h"
#include "parallel/fssdp/materialization.h"
#include "parallel/fssdp/sparse_collectives.h"

namespace moe {

// How the experts are owned and copied (the fssdp.* keys, every "0 = derived" resolved).
struct FssdpPlacement {
  MaterializationBudget budget;    // copies per rank and layer (slots), per step (overlap)
  int window = 1;                  // steps of load the predicted copies are planned from
  int ranks_per_node = 1;          // of the FSSDP group, for placing copies near their tokens
  bool rematerialize = false;      // gather copies again in backward instead of keeping them
  int reshard_interval = 0;        // steps between owner moves; 0 = never (the trainer moves them)
  bool calibrate = false;          // plan each forward's copies from its own routed tokens
  double inter_node_row_cost = 0;  // Topology::inter_node_row_cost (moe-train: the fssdp key's)
  double copy_rows = 0;            // Topology::copy_rows
  // parallel.experts: llep: owners stay the expert-parallel blocks and each forward plans with
  // the least-loaded planner (least_loaded.h) instead of Algorithm 1; never resharded.
  std::optional<LeastLoadedBudget> least_loaded = std::nullopt;
};

class FssdpCoordinator {
 public:
  // group: the FSSDP group (null: one rank).
  FssdpCoordinator(int layers, int experts, const FssdpPlacement& placement, Communicator* group);

  Communicator* group() const { return group_; }
  int rank() const { return rank_; }
  const Topology& topology() const { return topology_; }
  int layers() const { return static_cast<int>(plans_.size()); }
  bool rematerialize() const { return placement_.rematerialize; }
  int reshard_interval() const { return placement_.reshard_interval; }
  // The experts of MoE layer `layer` this rank owns, increasing.
  std::vector<int64_t> owned(int layer) const;
  // Where MoE layer `layer`'s experts were held by its last forward (before any: this step's
  // predicted plan).
  const ExpertPlan& plan(int layer) const { return plans_.at(layer); }
  // The copies (ExpertPlan::copies) of MoE layer `layer`'s plans, the mean over this step's
  // forwards (calibrated plans differ between micro-batches); the plan's before any forward.
  double copies_per_forward(int layer) const;
  // Whether plan_forward keeps the step's plan (prediction alone), so that a layer's copies can be
  // gathered before its router runs.
  bool planned_before_routing() const { return !placement_.calibrate && !placement_.least_loaded; }

  // Plans this step's copies from the predicted loads.
  void begin_step();
  // The plan a forward of MoE layer `layer` holds its experts by, given the tokens its router sent
  // to each expert, summed over the group's ranks: the step's, or (calibration, LLEP) one
  // planned from these tokens.
  const ExpertPlan& plan_forward(int layer, const std::vector<int64_t>& tokens);
  // Owners of every layer's experts, [layer * experts + expert].
  const std::vector<int>& owners() const { return owner_; }
  // The owners resharding.h would choose for the predicted loads (the experts materialized
  // everywhere placed last).
  std::vector<int> proposed_owners() const;
  // New owners (after their state has moved); copies are planned again at the next begin_step.
  void set_owners(const std::vector<int>& owners);
  // One step's tokens per expert, summed over all ranks, for each MoE layer.
  void record(const std::vector<std::vector<int64_t>>& loads);

  // A layer's copies' gradient reduce, started in its backward, left running behind the work
  // that follows (one at a time: a pending one is finished first). finish_pending completes it:
  // before the next sparse transfer and at the end of backward.
  void defer(PendingReduce reduce, Stream& stream);
  void finish_pending(Stream& stream);

 private:
  int experts_;
  FssdpPlacement placement_;
  Topology topology_;
  Communicator* group_;
  int rank_;
  std::vector<int> owner_;  // [layer * experts + expert]
  std::vector<LoadHistory> history_;
  std::vector<ExpertPlan> plans_;
  std::vector<int64_t> step_copies_;  // per layer: copies summed over this step's forwards
  std::vector<int> step_forwards_;    // per layer: this step's forwards
  PendingReduce pending_;
};

}  // namespace moe
