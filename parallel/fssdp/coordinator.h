// What the ranks of one FSSDP group (the EP group under parallel.experts: fssdp) agree on for one
// model: which rank owns each expert of each MoE layer (resharding.h), and where this step copies
// them (materialization.h) from the load history of every layer.
//
// Decisions:
// - Every rank keeps its own coordinator and feeds it the same global loads (the trainer sums
//   them over all data-parallel ranks), so plans agree without being communicated.
// - The first owners come from shard_experts with no load: a balanced deal of all layers'
//   experts. Until a step has recorded loads, nothing is copied.
// - MoE layers are numbered among themselves (0 .. layers - 1), not by block.
#pragma once

#include <vector>

#include "parallel/communicator.h"
#include "parallel/fssdp/load_history.h"
#include "parallel/fssdp/materialization.h"

namespace moe {

class FssdpCoordinator {
 public:
  // group: the FSSDP group (null: one rank); its size is topology.ranks.
  // rematerialize: MoE layers drop their copies after forward and gather them again in backward;
  // reshard_interval: steps between owner moves (0 = never; the trainer moves them).
  FssdpCoordinator(int layers, int experts, const MaterializationBudget& budget, int window,
                   const Topology& topology, Communicator* group, bool rematerialize = false,
                   int reshard_interval = 0);

  Communicator* group() const { return group_; }
  int rank() const { return rank_; }
  const Topology& topology() const { return topology_; }
  int layers() const { return static_cast<int>(plans_.size()); }
  bool rematerialize() const { return rematerialize_; }
  int reshard_interval() const { return reshard_interval_; }
  // The experts of MoE layer `layer` this rank owns, increasing.
  std::vector<int64_t> owned(int layer) const;
  // Where MoE layer `layer`'s experts are held this step.
  const ExpertPlan& plan(int layer) const { return plans_.at(layer); }

  // Plans this step's copies from the predicted loads.
  void begin_step();
  // Owners of every layer's experts, [layer * experts + expert].
  const std::vector<int>& owners() const { return owner_; }
  // The owners resharding.h would choose for the predicted loads (the experts materialized
  // everywhere placed last).
  std::vector<int> proposed_owners() const;
  // New owners (after their state has moved); copies are planned again at the next begin_step.
  void set_owners(const std::vector<int>& owners);
  // One step's tokens per expert, summed over all ranks, for each MoE layer.
  void record(const std::vector<std::vector<int64_t>>& loads);

 private:
  int experts_;
  MaterializationBudget budget_;
  Topology topology_;
  Communicator* group_;
  int rank_;
  bool rematerialize_;
  int reshard_interval_;
  std::vector<int> owner_;  // [layer * experts + expert]
  std::vector<LoadHistory> history_;
  std::vector<ExpertPlan> plans_;
};

}  // namespace moe
