// The communicators a model and its optimizer work with, as ProcessGrid builds them. A null group
// is a group of one rank, so single-process code and unit tests pass ParallelGroups{}.
#pragma once

#include "parallel/communicator.h"

namespace moe {

struct ParallelGroups {
  Communicator* world = nullptr;
  Communicator* tp = nullptr;   // tensor parallel: same data, split weights
  Communicator* dp = nullptr;   // data parallel: same tp rank, other data
  Communicator* ep = nullptr;   // expert parallel: the dp ranks that share out the experts
  Communicator* edp = nullptr;  // expert data parallel: the ranks holding the same experts
  bool expert_tp = false;       // experts split over tp too (else whole on every tp rank)
};

inline int group_size(const Communicator* group) { return group ? group->size() : 1; }
inline int group_rank(const Communicator* group) { return group ? group->rank() : 0; }

// x = sum over the group of x; nothing on a group of one.
inline void all_reduce_sum(Communicator* group, Tensor& x, Stream& stream) {
  if (group_size(group) > 1) group->all_reduce(x, ReduceOp::sum, stream);
}

// The bytes this rank handed to the collectives of all its groups (see Communicator::volume).
inline CommVolume total_volume(const ParallelGroups& groups) {
  CommVolume total;
  for (const Communicator* group : {groups.world, groups.tp, groups.dp, groups.ep, groups.edp})
    if (group)
      for (int kind = 0; kind < kCollectiveKinds; ++kind)
        total.bytes[kind] += group->volume().bytes[kind];
  return total;
}

inline void reset_volume(const ParallelGroups& groups) {
  for (Communicator* group : {groups.world, groups.tp, groups.dp, groups.ep, groups.edp})
    if (group) group->reset_volume();
}

}  // namespace moe
