#include "parallel/fssdp/coordinator.h"

#include <algorithm>

#include "core/error.h"
#include "parallel/fssdp/resharding.h"
#include "parallel/parallel_groups.h"

namespace moe {

// Expert parallelism's placement: expert e of every layer on rank e / (experts / ranks).
static std::vector<int> expert_parallel_blocks(int layers, int experts, int ranks) {
  MOE_ASSERT(experts % ranks == 0, "LLEP: ", ranks, " ranks do not divide ", experts, " experts");
  std::vector<int> owner;
  for (int l = 0; l < layers; ++l)
    for (int e = 0; e < experts; ++e) owner.push_back(e / (experts / ranks));
  return owner;
}

FssdpCoordinator::FssdpCoordinator(int layers, int experts, const FssdpPlacement& placement,
                                   Communicator* group)
    : experts_(experts),
      placement_(placement),
      topology_{group_size(group), placement.ranks_per_node, 0, placement.inter_node_row_cost,
                placement.copy_rows},
      group_(group),
      rank_(group_rank(group)),
      owner_(placement.least_loaded ? expert_parallel_blocks(layers, experts, topology_.ranks)
                                    : shard_experts(std::vector<std::vector<double>>(
                                                        layers, std::vector<double>(experts)),
                                                    0, topology_)),
      history_(layers, LoadHistory(experts, placement.window)),
      step_copies_(layers, 0),
      step_forwards_(layers, 0) {
  MOE_ASSERT(layers > 0 && placement.ranks_per_node > 0, "FssdpCoordinator: ", layers, " layers, ",
             placement.ranks_per_node, " ranks per node");
  if (group_size(group_) > 1) group_->enable_overlapped_transfers();  // copies behind compute
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
  step_copies_.assign(layers(), 0);
  step_forwards_.assign(layers(), 0);
  if (placement_.least_loaded) return;  // planned by each forward
  for (int l = 0; l < layers(); ++l)
    plans_[l] =
        plan_materialization(plans_[l].owner, history_[l].predict(), placement_.budget, topology_);
}

const ExpertPlan& FssdpCoordinator::plan_forward(int layer, const std::vector<int64_t>& tokens) {
  MOE_ASSERT(static_cast<int>(tokens.size()) == experts_, "FssdpCoordinator: tokens of ",
             tokens.size(), " experts for ", experts_);
  ExpertPlan& plan = plans_.at(layer);
  if (placement_.least_loaded)
    plan = plan_least_loaded(plan.owner, tokens, *placement_.least_loaded, topology_.ranks);
  else if (placement_.calibrate) {
    plan = plan_materialization(plan.owner, {tokens.begin(), tokens.end()}, placement_.budget,
                                topology_);
    plan.balance = true;  // exact loads: quotas can follow them
  }
  step_copies_[layer] += plan.copies();
  ++step_forwards_[layer];
  return plan;
}

double FssdpCoordinator::copies_per_forward(int layer) const {
  if (step_forwards_.at(layer) == 0) return static_cast<double>(plans_.at(layer).copies());
  return static_cast<double>(step_copies_[layer]) / step_forwards_[layer];
}

std::vector<int> FssdpCoordinator::proposed_owners() const {
  std::vector<std::vector<double>> load;
  for (const LoadHistory& h : history_) load.push_back(h.predict());
  // Algorithm 1 copies the top `overlap` experts to every rank only when the slots allow it.
  const MaterializationBudget& budget = placement_.budget;
  const int t = std::min(budget.overlap, experts_), m = std::min(budget.slots, t);
  const int everywhere = t > 0 && t <= m ? t : 0;
  return shard_experts(load, everywhere, topology_);
}

void FssdpCoordinator::set_owners(const std::vector<int>& owners) {
  MOE_ASSERT(owners.size() == owner_.size(), "FssdpCoordinator: ", owners.size(), " owners for ",
             owner_.size(), " experts");
  owner_ = owners;
  for (int l = 0; l < layers(); ++l)
    plans_[l] = owners_only({owner_.begin() + l * experts_, owner_.begin() + (l + 1) * experts_});
}

void FssdpCoordinator::record(const std::vector<std::vector<int64_t>>& loads) {
  MOE_ASSERT(static_cast<int>(loads.size()) == layers(), "FssdpCoordinator: loads of ",
             loads.size(), " layers for ", layers());
  for (int l = 0; l < layers(); ++l)
    history_[l].record(std::vector<double>(loads[l].begin(), loads[l].end()));
}

void FssdpCoordinator::defer(PendingReduce reduce, Stream& stream) {
  finish_pending(stream);
  pending_ = std::move(reduce);
}

void FssdpCoordinator::finish_pending(Stream& stream) { pending_.finish(stream); }

}  // namespace moe
