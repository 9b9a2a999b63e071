// The process grid (DESIGN.md §3): world = tp x dp, with expert parallelism carved out of data
// parallelism (ep divides dp; expert weights are replicated over edp = dp / ep groups).
//
// Decisions:
// - Rank layout, innermost first: tp, then ep, then edp. world rank = (edp_index * ep + ep_index)
//   * tp + tp_index, so a TP group is tp consecutive ranks (one node's GPUs, where the bandwidth
//   is), as in Megatron-LM. dp_index = edp_index * ep + ep_index.
// - Groups: tp (same dp_index), dp (same tp_index), ep (same tp_index and edp_index) and edp (same
//   tp_index and ep_index); each is a Communicator made by split, so a group of one is a no-op.
// - dp = 0 means "the rest": world / tp. Any inconsistency is an InputError naming the numbers.
#pragma once

#include <memory>

#include "parallel/communicator.h"
#include "parallel/parallel_groups.h"

namespace moe {

class ProcessGrid {
 public:
  ProcessGrid(Communicator& world, int tp, int dp, int ep);

  int world_size() const { return world_.size(); }
  int tp_size() const { return tp_; }
  int dp_size() const { return dp_; }
  int ep_size() const { return ep_; }
  int edp_size() const { return dp_ / ep_; }
  int tp_rank() const { return tp_group_->rank(); }
  int dp_rank() const { return dp_group_->rank(); }
  int ep_rank() const { return ep_group_->rank(); }
  int edp_rank() const { return edp_group_->rank(); }

  Communicator& world() { return world_; }
  Communicator& tp_group() { return *tp_group_; }
  Communicator& dp_group() { return *dp_group_; }
  Communicator& ep_group() { return *ep_group_; }
  Communicator& edp_group() { return *edp_group_; }
  ParallelGroups groups(bool expert_tp) {
    return {&world_,         tp_group_.get(),  dp_group_.get(),
            ep_group_.get(), edp_group_.get(), expert_tp};
  }

 private:
  Communicator& world_;
  int tp_, dp_, ep_;
  std::unique_ptr<Communicator> tp_group_, dp_group_, ep_group_, edp_group_;
};

}  // namespace moe
