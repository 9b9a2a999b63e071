// The host pool (core/allocator.h): a freed tensor's block serves the next tensor of its size,
// the byte counters still count tensors (not what the pool keeps), and threads allocating and
// freeing at once leave the counters where they started. Skipped under MOE_HOST_POOL=0.
#include <cstdlib>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/tensor.h"

namespace moe {
namespace {

bool pool_off() {
  const char* value = std::getenv("MOE_HOST_POOL");
  return value && std::string(value) == "0";
}

TEST(HostPool, AFreedTensorsBlockServesTheNextTensorOfItsSize) {
  if (pool_off()) GTEST_SKIP() << "MOE_HOST_POOL=0";
  const void* first;
  {
    Tensor a = Tensor::empty({12345}, DType::f32);
    first = a.raw();
  }
  Tensor b = Tensor::empty({12340}, DType::f32);  // the same 512-byte bucket
  EXPECT_EQ(b.raw(), first);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.raw()) % kHostAlignment, 0u);
}

TEST(HostPool, CountersCountTensorsNotTheCachedBlocks) {
  const int64_t before = host_bytes_in_use();
  {
    Tensor a = Tensor::empty({1000}, DType::f32);
    EXPECT_EQ(host_bytes_in_use(), before + 4000);  // not the 4096 of its bucket
  }
  EXPECT_EQ(host_bytes_in_use(), before);  // its block is cached, but no tensor holds it
}

TEST(HostPool, ThreadsAllocatingAndFreeingAtOnceLeaveTheCountersWhereTheyStarted) {
  const int64_t before = host_bytes_in_use();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      for (int round = 0; round < 200; ++round) {
        std::vector<Tensor> held;
        for (int64_t n = 1; n <= 64; n *= 2)
          held.push_back(Tensor::empty({n * 1000 + t + round}, DType::f32));
        for (Tensor& tensor : held) tensor.data<float>()[0] = static_cast<float>(t);
        for (const Tensor& tensor : held) ASSERT_EQ(tensor.data<float>()[0], t);
      }
    });
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(host_bytes_in_use(), before);
}

}  // namespace
}  // namespace moe
