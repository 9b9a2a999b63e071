// Expert capacity on the CPU: one serial pass over the expert groups of sorted_slots (a partial
// sort per over-full group at most), small next to the experts' GEMMs.
// - DropPolicy::position keeps the first `capacity` slots of each group.
// - DropPolicy::probs ranks a group's positions by (prob descending, slot ascending; a NaN prob
//   ranks last, so the comparator stays a strict weak order), keeps the best `capacity`, then sorts
//   the kept positions back into their original order.
// A group is written, front to back, at or before where it is read, and kept positions ascend, so
// no write overtakes a read: kept_slots may be sorted_slots itself. Slot values are checked (they
// index probs) before anything is written.
// probs are f32/f64 only: bf16 training keeps the router probs in f32 (bf16 is an InputError).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

namespace {

// Positions [0, count) of one group in, the kept ones out, in ascending order.
template <typename T>
void keep_highest_probs(const int32_t* group, int64_t count, int64_t capacity, const T* probs,
                        std::vector<int64_t>& kept) {
  kept.resize(static_cast<size_t>(count));
  std::iota(kept.begin(), kept.end(), 0);
  auto key = [&](int64_t i) {
    const double p = probs[group[i]];
    return std::isnan(p) ? -INFINITY : p;
  };
  std::partial_sort(kept.begin(), kept.begin() + capacity, kept.end(), [&](int64_t a, int64_t b) {
    const double ka = key(a), kb = key(b);
    return ka > kb || (ka == kb && group[a] < group[b]);
  });
  kept.resize(static_cast<size_t>(capacity));
  std::sort(kept.begin(), kept.end());
}

}  // namespace

int64_t moe_apply_capacity(const Tensor& sorted_slots, const Tensor& counts, const Tensor& probs,
                           int64_t capacity, DropPolicy policy, Tensor& kept_slots,
                           Tensor& kept_counts, Stream&) {
  const int32_t* in = sorted_slots.data<int32_t>();
  for (int64_t r = 0; r < sorted_slots.numel(); ++r)
    MOE_CHECK(in[r] >= 0 && in[r] < probs.numel(), "moe_apply_capacity: sorted_slots[", r,
              "] = ", in[r], " is outside [0, ", probs.numel(), ")");
  const int64_t* count = counts.data<int64_t>();
  int64_t* kept_count = kept_counts.data<int64_t>();
  int32_t* out = kept_slots.data<int32_t>();
  int64_t read = 0, written = 0;
  float_dispatch(probs.dtype(), "moe_apply_capacity", [&]<typename T>() {
    std::vector<int64_t> kept;
    for (int64_t e = 0; e < counts.numel(); ++e) {
      const int32_t* group = in + read;
      const int64_t keep = std::min(count[e], capacity);
      const bool rank = policy == DropPolicy::probs && keep < count[e];
      if (rank) keep_highest_probs(group, count[e], keep, probs.data<T>(), kept);
      for (int64_t i = 0; i < keep; ++i) out[written + i] = group[rank ? kept[i] : i];
      kept_count[e] = keep;
      read += count[e];
      written += keep;
    }
  });
  return written;
}

}  // namespace moe::cpu
