// ops::concurrently: every task runs once, in the given order where the tasks run one after
// another, an exception reaches the caller, and the op profile records the call as one entry.
#include <atomic>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/concurrently.h"
#include "kernels/op_profile.h"
#include "kernels/ops.h"

namespace moe {
namespace {

TEST(Concurrently, RunsEveryTaskOnce) {
  std::vector<std::atomic<int>> runs(50);
  std::vector<int> order;
  for (int i = 49; i >= 0; i -= 2) order.push_back(i);  // every other index, backwards
  ops::concurrently("test", Device::cpu(), order, [&](int i) { ++runs[i]; });
  for (int i = 0; i < 50; ++i) EXPECT_EQ(runs[i], i % 2) << i;
}

TEST(Concurrently, OffTheCpuTheTasksRunOneAfterAnotherInOrder) {
  const std::vector<int> order{3, 0, 2, 1};
  std::vector<int> seen;  // unsynchronized: one thread only
  ops::concurrently("test", Device::cuda(0), order, [&](int i) { seen.push_back(i); });
  EXPECT_EQ(seen, order);
}

TEST(Concurrently, AnExceptionReachesTheCaller) {
  std::atomic<int> runs{0};
  EXPECT_THROW(ops::concurrently("test", Device::cpu(), {0, 1, 2, 3},
                                 [&](int i) {
                                   ++runs;
                                   if (i == 2) throw std::runtime_error("task 2");
                                 }),
               std::runtime_error);
  EXPECT_EQ(runs, 4);  // the others still ran
}

TEST(Concurrently, TheProfileRecordsTheCallNotTheOpsInside) {
  ops::reset_op_profile();
  ops::set_op_profiling(true);
  std::vector<Tensor> outs;
  for (int i = 0; i < 4; ++i) outs.push_back(Tensor::empty({100}, DType::f32));
  ops::concurrently("experts_test", Device::cpu(), {0, 1, 2, 3}, [&](int i) {
    Stream stream;
    ops::fill(outs[i], i, stream);
  });
  ops::set_op_profiling(false);
  const std::vector<ops::OpTime> profile = ops::op_profile();
  ASSERT_EQ(profile.size(), 1u);
  EXPECT_EQ(profile[0].op, "experts_test");
  EXPECT_EQ(profile[0].calls, 1);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(outs[i].data<float>()[99], i);
}

}  // namespace
}  // namespace moe
