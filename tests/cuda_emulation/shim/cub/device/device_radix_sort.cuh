// The emulator's stand-in for CUB's DeviceRadixSort::SortPairs: a stable sort of (key, value)
// pairs by bits [begin_bit, end_bit) of the key, a signed key's sign bit flipped first as CUB
// does, so negative keys order before positive ones. The first call (temp == nullptr) asks for a
// temporary storage size, as with CUB; the second must pass storage of that size.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "cuda_runtime.h"

namespace cub {

struct DeviceRadixSort {
  template <typename Key, typename Value>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const Key* keys_in, Key* keys_out,
                               const Value* values_in, Value* values_out, int items,
                               int begin_bit = 0, int end_bit = sizeof(Key) * 8,
                               cudaStream_t = nullptr) {
    constexpr size_t kTempBytes = 64;
    if (temp == nullptr) {
      temp_bytes = kTempBytes;
      return cudaSuccess;
    }
    if (temp_bytes < kTempBytes || begin_bit < 0 || end_bit > static_cast<int>(sizeof(Key) * 8) ||
        begin_bit >= end_bit)
      return cudaErrorInvalidValue;
    emu::run_deferred_copies();  // the sort orders after what the stream queued
    using Bits = std::make_unsigned_t<Key>;
    const auto digit = [&](Key key) {
      Bits bits = static_cast<Bits>(key);
      if (std::is_signed_v<Key>) bits ^= Bits{1} << (sizeof(Key) * 8 - 1);
      bits >>= begin_bit;
      const int width = end_bit - begin_bit;
      return width == static_cast<int>(sizeof(Key) * 8) ? bits : (bits & ((Bits{1} << width) - 1));
    };
    std::vector<int> order(static_cast<size_t>(items));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int i, int j) { return digit(keys_in[i]) < digit(keys_in[j]); });
    std::vector<Key> keys(static_cast<size_t>(items));
    std::vector<Value> values(static_cast<size_t>(items));
    for (int i = 0; i < items; ++i) {
      keys[static_cast<size_t>(i)] = keys_in[order[static_cast<size_t>(i)]];
      values[static_cast<size_t>(i)] = values_in[order[static_cast<size_t>(i)]];
    }
    std::copy(keys.begin(), keys.end(), keys_out);
    std::copy(values.begin(), values.end(), values_out);
    emu::check_guards("cub::DeviceRadixSort::SortPairs");
    return cudaSuccess;
  }
};

}  // namespace cub
