// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011).
//
// A draw is a pure function of (seed, stream, counter): there is no hidden state to carry between
// ranks. Parameter init uses stream = a hash of the parameter's global name and counter = the
// global element index, so the same global parameter gets the same values whatever the parallel
// layout, and a shard can fill just its own slice.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace moe {

std::array<uint32_t, 4> philox4x32(uint64_t seed, uint64_t stream, uint64_t counter);

// A stable 64-bit hash (FNV-1a) for naming streams, e.g. by parameter name.
uint64_t stream_id(std::string_view name);

class Philox {
 public:
  Philox(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}

  // Uniform in [0, 1) from element `index`: 24 random bits, exact in float.
  float uniform(uint64_t index) const;
  // Standard normal from element `index` (Box-Muller over one Philox block).
  float normal(uint64_t index) const;
  // Uniform 32-bit integer from element `index`.
  uint32_t bits(uint64_t index) const;

 private:
  uint64_t seed_;
  uint64_t stream_;
};

}  // namespace moe
