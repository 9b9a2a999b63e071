#include "trainer/gradient_sync.h"

#include "kernels/ops.h"

namespace moe {

namespace {

Tensor arena_part(ParameterStore& store, ArenaRange range) {
  return store.grads().narrow(range.begin, range.size());
}

constexpr ParamGroup kGroups[] = {ParamGroup::dense, ParamGroup::expert};

}  // namespace

Communicator* reduction_group(const ParallelGroups& groups, ParamGroup group) {
  return group == ParamGroup::dense ? groups.dp : groups.edp;
}

void sum_partial_gradients(ParameterStore& store, const ParallelGroups& groups, Stream& stream) {
  for (ParamGroup group : kGroups) {
    Tensor part = arena_part(store, store.range(group, TpMode::partial));
    if (part.numel() > 0) all_reduce_sum(groups.tp, part, stream);
  }
}

void average_gradients(ParameterStore& store, const ParallelGroups& groups, Stream& stream) {
  const int dp = group_size(groups.dp);
  if (dp == 1) return;
  for (ParamGroup group : kGroups) {
    Tensor part = arena_part(store, store.range(group));
    if (part.numel() == 0) continue;
    all_reduce_sum(reduction_group(groups, group), part, stream);
    ops::scale(part, 1.0f / static_cast<float>(dp), stream);
  }
}

}  // namespace moe
