// Where expert state lives under FSSDP (Hecate, METHODS.md §1): every expert of a group (one MoE
// layer, or all of them) has one owner rank, which keeps its master weights and optimizer state,
// and, for one step, a set of holders: the owner and the ranks its parameters are materialized on.
// The planners (materialization.h, resharding.h) produce these; the sparse collectives
// (sparse_collectives.h) and the replica routing (replica_routing.h) consume them.
//
// Decisions:
// - Plain vectors indexed by expert: plans are pure values, compared and hashed in tests, and
//   computed identically on every rank from the same (all-reduced) loads. Routing's choice weighs
//   doubles (Topology's costs), summed in the same order on every rank: the same binary on every
//   rank gives every rank the same choice, which the collectives' sizes rely on.
// - Holders are kept sorted by rank, so every loop over them (sends, sums, routing) has one order
//   on every rank; this is what makes the collectives deadlock-free and the sums deterministic.
#pragma once

#include <cstdint>
#include <vector>

namespace moe {

// Ranks and how they group into nodes (rank r is on node r / ranks_per_node), and what traffic
// costs, for routing to weigh a choice's balance against it (replica_routing.h; 0: rows only):
// exchanging a token row with another rank, in units of the time its expert takes to compute it
// (forward and backward), and an expert copy's traffic (parameters in, gradient back) in rows.
struct Topology {
  int ranks = 1;
  int ranks_per_node = 1;
  double intra_node_row_cost = 0, inter_node_row_cost = 0;
  double copy_rows = 0;

  int node_of(int rank) const { return rank / ranks_per_node; }
  int nodes() const { return (ranks + ranks_per_node - 1) / ranks_per_node; }
};

struct ExpertPlan {
  std::vector<int> owner;                 // per expert
  std::vector<std::vector<int>> holders;  // per expert: sorted ranks with a copy, owner included
  // Empty, or per expert the tokens each holder takes (holders' order): the least-loaded planner
  // sets them (least_loaded.h); without them the tokens split evenly (replica_routing.h).
  std::vector<std::vector<int64_t>> quota = {};
  // Instead of quotas: routing (route_every_rank) splits each expert's tokens with balanced quotas
  // of its own (balanced_split.h), for each TP share of the tokens (a calibrated FSSDP plan).
  bool balance = false;

  int experts() const { return static_cast<int>(owner.size()); }
  bool holds(int expert, int rank) const;
  // The experts `rank` holds without owning them (its replicas), in expert order.
  std::vector<int> replicas_on(int rank) const;
  // Copies beyond the owners, over all experts and ranks.
  int64_t copies() const;
  bool operator==(const ExpertPlan&) const = default;
};

// Indices by load, highest first, the lower index first among equal loads.
std::vector<int> order_by_load(const std::vector<double>& load);

// Only owners: holders[e] = {owner[e]}.
ExpertPlan owners_only(const std::vector<int>& owner);

// Throws InternalError unless every expert has an owner in [0, ranks) among its sorted, distinct
// holders.
void check_plan(const ExpertPlan& plan, const Topology& topology);

}  // namespace moe
