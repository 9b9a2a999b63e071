// The emulator's own checks (emulator.h): toy kernels with a bug it must report, and the warp
// collectives against their definitions. Each bug is one a real kernel could have.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/half.h"
#include "tests/cuda_emulation/shim/cuda_bf16.h"

namespace {

std::vector<int> run_to_host(int n, const std::function<void(int*)>& launch) {
  int* device = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&device), n * sizeof(int));
  std::vector<int> host(static_cast<size_t>(n));
  try {
    launch(device);
  } catch (...) {
    cudaFree(device);
    throw;
  }
  cudaMemcpy(host.data(), device, n * sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(device);
  return host;
}

void write_index(int* out, int n, int slack) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n + slack) out[i] = i;
}

TEST(CudaEmulator, GuardBytesCatchAWritePastTheEnd) {
  const auto run = [](int slack) {
    return run_to_host(100, [&](int* out) {
      emu::launch("write_index", emu::Config(4, 32), write_index, out, 100, slack);
    });
  };
  const std::vector<int> out = run(0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(out[static_cast<size_t>(i)], i);
  EXPECT_THROW(run(1), std::runtime_error);
}

// Thread t reads what thread t + 1 wrote to shared memory; without the barrier, the schedule
// that runs t first reads garbage.
void neighbour_sum(int* out, bool barrier) {
  auto& values = emu::shared<int[64], 1>();
  const int t = static_cast<int>(threadIdx.x);
  values[t] = t;
  if (barrier) __syncthreads();
  out[t] = values[(t + 1) % 64];
}

TEST(CudaEmulator, AMissingBarrierReadsGarbage) {
  const auto run = [](bool barrier) {
    return run_to_host(64, [&](int* out) {
      emu::launch("neighbour_sum", emu::Config(1, 64), neighbour_sum, out, barrier);
    });
  };
  const std::vector<int> synced = run(true), racy = run(false);
  int wrong = 0;
  for (int t = 0; t < 64; ++t) {
    EXPECT_EQ(synced[static_cast<size_t>(t)], (t + 1) % 64);
    wrong += racy[static_cast<size_t>(t)] != (t + 1) % 64;
  }
  EXPECT_GT(wrong, 0) << "every schedule runs one of two neighbours before the other";
}

// Each warp publishes a count per round and reads the other warp's, without the barrier that
// should end the round: a warp that runs ahead overwrites its count before the other has read it.
void round_counts(int* out) {
  auto& counts = emu::shared<int[2], 2>();
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  for (int round = 0; round < 2; ++round) {
    const unsigned ballot = __ballot_sync(0xffffffffu, lane <= round);
    if (lane == 0) counts[warp] = __popc(ballot);
    __syncthreads();
    out[round * 64 + static_cast<int>(threadIdx.x)] = counts[1 - warp];
  }
}

// Eager warps (every schedule but forward) show the race; forward, which moves the warps in
// lockstep from collective to collective, does not.
TEST(CudaEmulator, EagerWarpsShowAMissingBarrierBetweenWarps) {
  const char* schedule = std::getenv("MOE_EMU_SCHEDULE");
  const bool eager = schedule && std::string(schedule) != "forward";
  const std::vector<int> out = run_to_host(
      128, [](int* o) { emu::launch("round_counts", emu::Config(1, 64), round_counts, o); });
  int wrong = 0;
  for (int i = 0; i < 128; ++i) wrong += out[static_cast<size_t>(i)] != i / 64 + 1;
  EXPECT_EQ(wrong > 0, eager) << wrong << " stale counts";
}

void collectives(int* out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int base = static_cast<int>(threadIdx.x) * 6;
  out[base] = __shfl_xor_sync(0xffffffffu, lane * 10, 3);
  out[base + 1] = __shfl_down_sync(0xffffffffu, lane * 10, 5);
  out[base + 2] = __shfl_sync(0xffffffffu, lane * 10, 7);
  out[base + 3] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0));
  out[base + 4] = __any_sync(0xffffffffu, lane == 31);
  out[base + 5] = __all_sync(0xffffffffu, lane < 31);
}

TEST(CudaEmulator, WarpCollectivesExchangeAcrossLanes) {
  const std::vector<int> out = run_to_host(
      64 * 6, [](int* o) { emu::launch("collectives", emu::Config(1, 64), collectives, o); });
  unsigned every_third = 0;
  for (int lane = 0; lane < 32; lane += 3) every_third |= 1u << lane;
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32;
    const int* o = &out[static_cast<size_t>(t) * 6];
    EXPECT_EQ(o[0], (lane ^ 3) * 10);
    EXPECT_EQ(o[1], (lane + 5 < 32 ? lane + 5 : lane) * 10);
    EXPECT_EQ(o[2], 70);
    EXPECT_EQ(static_cast<unsigned>(o[3]), every_third);
    EXPECT_EQ(o[4], 1);
    EXPECT_EQ(o[5], 0);
  }
}

// A lane that returns early leaves the others waiting at the shuffle forever on a GPU.
void early_exit_shuffle(int* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

TEST(CudaEmulator, AShuffleMissingALaneHangs) {
  EXPECT_THROW(run_to_host(32,
                           [](int* o) {
                             emu::launch("early_exit_shuffle", emu::Config(1, 32),
                                         early_exit_shuffle, o);
                           }),
               std::runtime_error);
}

TEST(CudaEmulator, InvalidLaunchesAreRefused) {
  EXPECT_THROW(run_to_host(1,
                           [](int* o) {
                             emu::launch("too_many_threads", emu::Config(1, 2048), write_index, o,
                                         1, 0);
                           }),
               std::runtime_error);
}

// The shim's bf16 rounding is the hardware's: to nearest even, as core/half.h's (the CPU
// backend's), on every non-NaN input; a NaN becomes the canonical 0x7fff.
TEST(CudaEmulator, Bf16RoundsLikeTheCpuBackend) {
  std::mt19937 rng(3);
  std::vector<uint32_t> patterns = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,
                                    0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x00000001u};
  for (int i = 0; i < 200000; ++i) patterns.push_back(static_cast<uint32_t>(rng()));
  for (const uint32_t bits : patterns) {
    const float x = __uint_as_float(bits);
    const uint16_t got = __float2bfloat16_rn(x).__x;
    if (std::isnan(x))
      EXPECT_EQ(got, 0x7fff);
    else
      EXPECT_EQ(got, moe::float_to_bf16(x).bits) << "bits " << bits;
  }
}

}  // namespace
