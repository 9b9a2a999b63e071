// CachingAllocator over a counting host allocator: repeated allocation patterns stop reaching the
// backing allocator, the figures (in use, reserved, peaks) are exact, best fit never hands out a
// block more than twice the request, and a failing backing allocator first gets the cache back.
#include <functional>

#include <gtest/gtest.h>

#include "core/caching_allocator.h"
#include "core/error.h"

namespace moe {
namespace {

// Host memory with a byte limit, counting what it hands out and takes back.
class CountingAllocator final : public Allocator {
 public:
  explicit CountingAllocator(size_t limit = SIZE_MAX) : limit_(limit) {}
  void* allocate(size_t bytes, Device device) override {
    if (held_ + bytes > limit_) MOE_THROW(DeviceError, "backing allocator is full");
    held_ += bytes;
    ++allocations_;
    return host_allocator().allocate(bytes, device);
  }
  void deallocate(void* ptr, size_t bytes, Device device) override {
    held_ -= bytes;
    ++frees_;
    host_allocator().deallocate(ptr, bytes, device);
  }
  size_t held_ = 0;
  int allocations_ = 0, frees_ = 0;

 private:
  size_t limit_;
};

const Device kGpu = Device::cuda(0);

std::string device_error_message(const std::function<void()>& call) {
  try {
    call();
  } catch (const DeviceError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected DeviceError";
  return "";
}

TEST(CachingAllocator, RoundsSmallSizesTo512AndLargeOnesToAnEighthOfAPowerOfTwo) {
  for (size_t bytes : {size_t{3} << 20, (size_t{1} << 30) + 1, size_t{123456789}})
    EXPECT_LE(CachingAllocator::rounded_size(bytes), bytes + bytes / 8) << bytes;  // <= 12.5%
  EXPECT_EQ(CachingAllocator::rounded_size(1), 512u);
  EXPECT_EQ(CachingAllocator::rounded_size(512), 512u);
  EXPECT_EQ(CachingAllocator::rounded_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::rounded_size(1 << 20), size_t{1} << 20);
  // 1 MiB + 1 lies above 1 MiB, whose eighth is 128 KiB.
  EXPECT_EQ(CachingAllocator::rounded_size((1 << 20) + 1), (size_t{1} << 20) + (128 << 10));
  EXPECT_EQ(CachingAllocator::rounded_size(100'000'000), 100'663'296u);  // 12 x 8 MiB
}

TEST(CachingAllocator, ARepeatedPatternReachesTheBackingAllocatorOnlyOnce) {
  CountingAllocator backing;
  CachingAllocator cache(backing);
  const std::vector<size_t> step_sizes = {4096, 1 << 22, 300, 4096, 7'000'000};
  for (int step = 0; step < 5; ++step) {
    std::vector<void*> blocks;
    for (size_t bytes : step_sizes) blocks.push_back(cache.allocate(bytes, kGpu));
    for (size_t i = 0; i < blocks.size(); ++i) cache.deallocate(blocks[i], step_sizes[i], kGpu);
  }
  EXPECT_EQ(backing.allocations_, 5);
  const MemoryStats s = cache.stats(kGpu);
  EXPECT_EQ(s.backing_allocations, 5);
  EXPECT_EQ(s.cache_hits, 20);
  EXPECT_EQ(s.in_use, 0);
  EXPECT_EQ(s.reserved, static_cast<int64_t>(backing.held_));
}

TEST(CachingAllocator, FiguresAreExact) {
  CountingAllocator backing;
  CachingAllocator cache(backing);
  void* a = cache.allocate(1000, kGpu);  // 1024
  void* b = cache.allocate(3000, kGpu);  // 3072
  EXPECT_EQ(cache.stats(kGpu).in_use, 4096);
  cache.deallocate(a, 1000, kGpu);
  void* c = cache.allocate(600, kGpu);  // 1024: takes a's block
  EXPECT_EQ(c, a);
  cache.deallocate(b, 3000, kGpu);
  cache.deallocate(c, 600, kGpu);
  MemoryStats s = cache.stats(kGpu);
  EXPECT_EQ(s.in_use, 0);
  EXPECT_EQ(s.peak_in_use, 4096);
  EXPECT_EQ(s.reserved, 4096);
  EXPECT_EQ(s.peak_reserved, 4096);
  cache.reset_peaks(kGpu);
  EXPECT_EQ(cache.stats(kGpu).peak_in_use, 0);
  cache.release_cached();
  s = cache.stats(kGpu);
  EXPECT_EQ(s.reserved, 0);
  EXPECT_EQ(s.peak_reserved, 4096);
  EXPECT_EQ(backing.frees_, 2);
  EXPECT_EQ(backing.held_, 0u);
}

TEST(CachingAllocator, BestFitTakesTheSmallestLargeEnoughBlockButNotOneOverTwiceTheRequest) {
  CountingAllocator backing;
  CachingAllocator cache(backing);
  void* big = cache.allocate(8192, kGpu);
  void* mid = cache.allocate(2048, kGpu);
  cache.deallocate(big, 8192, kGpu);
  cache.deallocate(mid, 2048, kGpu);
  EXPECT_EQ(cache.allocate(1536, kGpu), mid);  // 2048 <= 2 x 1536
  void* fresh = cache.allocate(1024, kGpu);    // 8192 > 2 x 1024: a new block
  EXPECT_NE(fresh, big);
  EXPECT_EQ(backing.allocations_, 3);
  EXPECT_EQ(cache.stats(kGpu).in_use, 2048 + 1024);
  cache.deallocate(fresh, 1024, kGpu);
}

TEST(CachingAllocator, AFreedBlockThatWouldTakeTheCachePastItsCapGoesBack) {
  CountingAllocator backing;
  CachingAllocator cache(backing, 5000);
  void* a = cache.allocate(2048, kGpu);
  void* b = cache.allocate(2048, kGpu);
  void* c = cache.allocate(2048, kGpu);
  cache.deallocate(a, 2048, kGpu);
  cache.deallocate(b, 2048, kGpu);  // 4096 cached
  EXPECT_EQ(backing.frees_, 0);
  cache.deallocate(c, 2048, kGpu);  // 6144 would pass 5000
  EXPECT_EQ(backing.frees_, 1);
  EXPECT_EQ(cache.stats(kGpu).cached(), 4096);
  EXPECT_EQ(cache.stats(kGpu).reserved, 4096);
  EXPECT_EQ(backing.held_, 4096u);
  void* again = cache.allocate(2048, kGpu);  // still served from the cache
  EXPECT_TRUE(again == a || again == b);
  EXPECT_EQ(backing.allocations_, 3);
  cache.deallocate(again, 2048, kGpu);
  cache.release_cached();
}

TEST(CachingAllocator, DevicesAreCountedApart) {
  CountingAllocator backing;
  CachingAllocator cache(backing);
  void* on0 = cache.allocate(512, Device::cuda(0));
  cache.deallocate(on0, 512, Device::cuda(0));
  void* on1 = cache.allocate(512, Device::cuda(1));  // device 0's cached block is not taken
  EXPECT_EQ(backing.allocations_, 2);
  EXPECT_EQ(cache.stats(Device::cuda(1)).in_use, 512);
  EXPECT_EQ(cache.stats(Device::cuda(0)).in_use, 0);
  cache.deallocate(on1, 512, Device::cuda(1));
}

TEST(CachingAllocator, AFullBackingAllocatorGetsTheCacheBackThenTheErrorNamesTheFigures) {
  CountingAllocator backing(8192);
  CachingAllocator cache(backing);
  void* small = cache.allocate(4096, kGpu);
  void* other = cache.allocate(2048, kGpu);
  cache.deallocate(small, 4096, kGpu);
  void* large = cache.allocate(6144, kGpu);  // fits only once the cached 4096 is released
  EXPECT_EQ(backing.frees_, 1);
  EXPECT_EQ(cache.stats(kGpu).reserved, 2048 + 6144);
  const std::string full = device_error_message([&] { cache.allocate(4096, kGpu); });
  EXPECT_NE(full.find("out of memory on cuda:0 allocating 4096 bytes with 8192 bytes in use"),
            std::string::npos)
      << full;
  EXPECT_NE(full.find("backing allocator is full"), std::string::npos) << full;
  cache.deallocate(other, 2048, kGpu);  // cached, released by the next failing request
  const std::string after_release = device_error_message([&] { cache.allocate(4096, kGpu); });
  EXPECT_NE(
      after_release.find("out of memory on cuda:0 allocating 4096 bytes with 6144 bytes in use"),
      std::string::npos)
      << after_release;
  cache.deallocate(large, 6144, kGpu);
}

TEST(CachingAllocator, ZeroBytesIsANullBlockAndCountsNothing) {
  CountingAllocator backing;
  CachingAllocator cache(backing);
  EXPECT_EQ(cache.allocate(0, kGpu), nullptr);
  cache.deallocate(nullptr, 0, kGpu);
  EXPECT_EQ(cache.stats(kGpu).in_use, 0);
  EXPECT_EQ(backing.allocations_, 0);
}

}  // namespace
}  // namespace moe
