#include "parallel/fssdp/coordinator.h"

#include "core/error.h"
#include "parallel/fssdp/resharding.h"
#include "parallel/parallel_groups.h"

namespace moe {

FssdpCoordinator::FssdpCoordinator(int layers, int experts, const MaterializationBudget& budget,
                                   int window, const Topology& topology, Communicator* group)
    : experts_(experts),
      budget_(budget),
      topology_(topology),
      group_(group),
      rank_(group_rank(group)),
      owner_(shard_experts(std::vector<std::vector<double>>(layers, std::vector<double>(experts)),
                           0, topology)),
      history_(layers, LoadHistory(experts, window)) {
  MOE_ASSERT(layers > 0 && group_size(group) == topology.ranks, "FssdpCoordinator: ", layers,
             " layers, a group of ", group_size(group), " for ", topology.ranks, " ranks");
  for (int l = 0; l < layers; ++l)
    plans_.push_back(
        owners_only({owner_.begin() + l * experts, owner_.begin() + (l + 1) * experts}));
}

std::vector<int64_t> FssdpCoordinator::owned(int layer) const {
  std::vector<int64_t> rows;
  for (int e = 0; e < experts_; ++e)
    if (owner_.at(layer * experts_ + e) == rank_) rows.push_back(e);
  return rows;
}

void FssdpCoordinator::begin_step() {
  for (int l = 0; l < layers(); ++l)
    plans_[l] = plan_materialization(plans_[l].owner, history_[l].predict(), budget_, topology_);
}

void FssdpCoordinator::record(const std::vector<std::vector<int64_t>>& loads) {
  MOE_ASSERT(static_cast<int>(loads.size()) == layers(), "FssdpCoordinator: loads of ",
             loads.size(), " layers for ", layers());
  for (int l = 0; l < layers(); ++l)
    history_[l].record(std::vector<double>(loads[l].begin(), loads[l].end()));
}

}  // namespace moe
