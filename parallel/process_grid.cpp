#include "parallel/process_grid.h"

#include "core/error.h"

namespace moe {

namespace {

int resolve_dp(int world, int tp, int dp) {
  MOE_CHECK(tp >= 1 && dp >= 0, "parallel.tp = ", tp, " must be >= 1 and parallel.dp = ", dp,
            " >= 0");
  if (dp == 0) {
    MOE_CHECK(world % tp == 0, "parallel.tp = ", tp, " does not divide the ", world,
              " ranks of the job");
    return world / tp;
  }
  MOE_CHECK(tp * dp == world, "parallel.tp = ", tp, " x parallel.dp = ", dp, " = ", tp * dp,
            " ranks, but the job has ", world);
  return dp;
}

}  // namespace

ProcessGrid::ProcessGrid(Communicator& world, int tp, int dp, int ep)
    : world_(world), tp_(tp), dp_(resolve_dp(world.size(), tp, dp)), ep_(ep) {
  MOE_CHECK(ep >= 1 && dp_ % ep == 0, "parallel.ep = ", ep, " must divide parallel.dp = ", dp_,
            " (the data-parallel size)");
  const int rank = world.rank();
  const int tp_index = rank % tp_, dp_index = rank / tp_;
  const int ep_index = dp_index % ep_, edp_index = dp_index / ep_;
  tp_group_ = world.split(dp_index, tp_index);
  dp_group_ = world.split(tp_index, dp_index);
  ep_group_ = world.split(tp_index * edp_size() + edp_index, ep_index);
  edp_group_ = world.split(tp_index * ep_ + ep_index, edp_index);
}

}  // namespace moe
