// The host allocator's byte counters: tensors add their requested size while alive, the peak is
// the most alive at once, and reset_host_bytes_peak starts it over from what is alive now.
#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/tensor.h"

namespace moe {
namespace {

TEST(HostAllocatorCounters, CountTensorBytesAndTheirPeak) {
  const int64_t before = host_bytes_in_use();
  reset_host_bytes_peak();
  EXPECT_EQ(host_bytes_peak(), before);
  {
    Tensor a = Tensor::empty({100}, DType::f32);  // 400 bytes
    EXPECT_EQ(host_bytes_in_use(), before + 400);
    {
      Tensor b = Tensor::empty({10, 3}, DType::f64);  // 240 bytes, not rounded to the alignment
      EXPECT_EQ(host_bytes_in_use(), before + 640);
    }
    EXPECT_EQ(host_bytes_in_use(), before + 400);
    Tensor c = Tensor::empty({50}, DType::i32);  // 200 bytes: 600 alive, below the 640 peak
    EXPECT_EQ(host_bytes_peak(), before + 640);
    reset_host_bytes_peak();
    EXPECT_EQ(host_bytes_peak(), before + 600);
  }
  EXPECT_EQ(host_bytes_in_use(), before);
  EXPECT_EQ(host_bytes_peak(), before + 600);
}

}  // namespace
}  // namespace moe
