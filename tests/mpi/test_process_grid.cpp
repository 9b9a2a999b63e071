// The process grid on 1, 2 and 4 ranks: every layout that fits the job gets the documented rank
// layout (TP innermost, then EP, then EDP) with the right group members, and layouts that do not
// fit are errors naming the numbers.
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "parallel/process_grid.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;

// The world ranks of the members of `group`, in group-rank order.
std::vector<int32_t> members(Communicator& group, int world_rank) {
  Stream stream;
  Tensor mine = Tensor::from_vector<int32_t>({1}, {world_rank});
  Tensor all = Tensor::empty({group.size()}, DType::i32);
  group.all_gather(mine, all, stream);
  return all.to_vector<int32_t>();
}

TEST(ProcessGrid, EveryLayoutThatFitsHasTheDocumentedGroups) {
  std::unique_ptr<Communicator> world = mpi_world_communicator();
  const int n = world->size(), rank = world->rank();
  int layouts = 0;
  for (int tp = 1; tp <= n; ++tp)
    for (int ep = 1; ep <= n; ++ep) {
      if (n % tp != 0 || (n / tp) % ep != 0) continue;
      ++layouts;
      ProcessGrid grid(*world, tp, 0, ep);
      const int dp = n / tp;
      SCOPED_TRACE("tp " + std::to_string(tp) + " ep " + std::to_string(ep));
      ASSERT_EQ(grid.dp_size(), dp);
      const int tp_index = rank % tp, dp_index = rank / tp;
      const int ep_index = dp_index % ep, edp_index = dp_index / ep;
      EXPECT_EQ(grid.tp_rank(), tp_index);
      EXPECT_EQ(grid.dp_rank(), dp_index);
      EXPECT_EQ(grid.ep_rank(), ep_index);
      EXPECT_EQ(grid.edp_rank(), edp_index);
      std::vector<int32_t> tp_members, dp_members, ep_members, edp_members;
      for (int i = 0; i < tp; ++i) tp_members.push_back(dp_index * tp + i);
      for (int i = 0; i < dp; ++i) dp_members.push_back(i * tp + tp_index);
      for (int i = 0; i < ep; ++i) ep_members.push_back((edp_index * ep + i) * tp + tp_index);
      for (int i = 0; i < dp / ep; ++i) edp_members.push_back((i * ep + ep_index) * tp + tp_index);
      EXPECT_EQ(members(grid.tp_group(), rank), tp_members);
      EXPECT_EQ(members(grid.dp_group(), rank), dp_members);
      EXPECT_EQ(members(grid.ep_group(), rank), ep_members);
      EXPECT_EQ(members(grid.edp_group(), rank), edp_members);
    }
  EXPECT_GE(layouts, n == 8 ? 10 : n == 4 ? 6 : 1);
}

TEST(ProcessGrid, LayoutsThatDoNotFitAreClearErrors) {
  std::unique_ptr<Communicator> world = mpi_world_communicator();
  const int n = world->size();
  EXPECT_TRUE(mentions(input_error_message([&] { ProcessGrid(*world, n + 1, 0, 1); }),
                       "parallel.tp = " + std::to_string(n + 1) + " does not divide the " +
                           std::to_string(n) + " ranks of the job"));
  EXPECT_TRUE(mentions(input_error_message([&] { ProcessGrid(*world, 1, n + 1, 1); }),
                       "parallel.tp = 1 x parallel.dp = " + std::to_string(n + 1) + " = " +
                           std::to_string(n + 1) + " ranks, but the job has " + std::to_string(n)));
  EXPECT_TRUE(mentions(input_error_message([&] { ProcessGrid(*world, 1, 0, n + 1); }),
                       "parallel.ep = " + std::to_string(n + 1) +
                           " must divide parallel.dp = " + std::to_string(n)));
}

}  // namespace
}  // namespace moe
