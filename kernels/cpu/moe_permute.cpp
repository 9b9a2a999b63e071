// Token permutation by expert on the CPU.
// - moe_sort_by_expert is a counting sort of the N*k slots by expert id: stable, O(N*k + E).
// - Two row movers serve the four permute ops: gather_rows (out[r] = src[slot_r / k]) for
//   moe_permute and moe_unpermute_backward (k = 1), and scatter_rows (dst zeroed, then
//   dst[slot_r / k] += src[r]) for moe_permute_backward and moe_unpermute (k = 1, where every slot
//   appears once, so the sum is a plain store and unlisted, dropped slots stay zero).
// - The scatter runs serially over rows and in parallel over columns: several rows may add into one
//   token, so splitting by rows would race.
// bf16 (as kernels/cuda/moe_permute.cu): row moves copy (no rounding); the scatter sums a token's
// rows in f32 in sorted-row order (CUDA adds in the same order) and rounds once. probs and dprobs
// are f32 next to bf16 activations (compute_t); moe_combine sums in f32 and rounds once,
// moe_combine_backward rounds each dy_slots element once and narrows its dprobs dot product (in
// double) to f32.
// Slot values are checked before any row moves, so a bad index is an InputError, never a stray
// write.
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

namespace {

void check_slots(const char* op, const Tensor& sorted_slots, int64_t num_slots) {
  const int32_t* p = sorted_slots.data<int32_t>();
  for (int64_t r = 0; r < sorted_slots.numel(); ++r)
    MOE_CHECK(p[r] >= 0 && p[r] < num_slots, op, ": sorted_slots[", r, "] = ", p[r],
              " is outside [0, ", num_slots, ")");
}

void gather_rows(const char* op, const Tensor& src, const Tensor& sorted_slots, int k,
                 Tensor& out) {
  check_slots(op, sorted_slots, src.dim(0) * k);
  const int32_t* slots = sorted_slots.data<int32_t>();
  const int64_t width = src.dim(1);
  storage_dispatch(src.dtype(), op, [&]<typename T>() {
    const T* s = src.data<T>();
    T* o = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < sorted_slots.numel(); ++r)
      std::memcpy(o + r * width, s + (slots[r] / k) * width, width * sizeof(T));
  });
}

void scatter_rows(const char* op, const Tensor& src, const Tensor& sorted_slots, int k,
                  Tensor& dst) {
  check_slots(op, sorted_slots, dst.dim(0) * k);
  const int32_t* slots = sorted_slots.data<int32_t>();
  const int64_t width = dst.dim(1);
  storage_dispatch(dst.dtype(), op, [&]<typename T>() {
    const T* s = src.data<T>();
    Accumulator<T> acc(dst, false);
    auto* d = acc.data();
    for (int64_t r = 0; r < sorted_slots.numel(); ++r) {
      auto* row = d + (slots[r] / k) * width;
      const T* from = s + r * width;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) row[c] += widen(from[c]);
    }
    acc.round_into_output();
  });
}

}  // namespace

void moe_sort_by_expert(const Tensor& expert_ids, int num_experts, Tensor& sorted_slots,
                        Tensor& counts, Stream&) {
  const int32_t* ids = expert_ids.data<int32_t>();
  const int64_t k = expert_ids.dim(1), slots = expert_ids.numel();
  int64_t* count = counts.data<int64_t>();
  std::fill_n(count, num_experts, 0);
  for (int64_t s = 0; s < slots; ++s) {
    MOE_CHECK(ids[s] >= 0 && ids[s] < num_experts, "moe_sort_by_expert: expert_ids[", s / k, ", ",
              s % k, "] = ", ids[s], " is outside [0, ", num_experts, ")");
    ++count[ids[s]];
  }
  std::vector<int64_t> next(static_cast<size_t>(num_experts), 0);
  for (int e = 1; e < num_experts; ++e) next[e] = next[e - 1] + count[e - 1];
  int32_t* out = sorted_slots.data<int32_t>();
  for (int64_t s = 0; s < slots; ++s) out[next[ids[s]]++] = static_cast<int32_t>(s);
}

void moe_permute(const Tensor& x, const Tensor& sorted_slots, int k, Tensor& out, Stream&) {
  gather_rows("moe_permute", x, sorted_slots, k, out);
}

void moe_permute_backward(const Tensor& dout, const Tensor& sorted_slots, int k, Tensor& dx,
                          Stream&) {
  scatter_rows("moe_permute_backward", dout, sorted_slots, k, dx);
}

void moe_unpermute(const Tensor& y, const Tensor& sorted_slots, Tensor& y_slots, Stream&) {
  scatter_rows("moe_unpermute", y, sorted_slots, 1, y_slots);
}

void moe_unpermute_backward(const Tensor& dy_slots, const Tensor& sorted_slots, Tensor& dy,
                            Stream&) {
  gather_rows("moe_unpermute_backward", dy_slots, sorted_slots, 1, dy);
}

void moe_combine(const Tensor& y_slots, const Tensor& probs, Tensor& out, Stream&) {
  const int64_t tokens = out.dim(0), width = out.dim(1), k = probs.dim(1);
  storage_dispatch(out.dtype(), "moe_combine", [&]<typename T>() {
    using C = compute_t<T>;
    expect_statistics_dtype<T>("moe_combine", "probs", probs);
    const T* y = y_slots.data<T>();
    const C* p = probs.data<C>();
    T* o = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < tokens; ++n)
      for (int64_t c = 0; c < width; ++c) {
        C sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += p[n * k + j] * widen(y[(n * k + j) * width + c]);
        o[n * width + c] = narrow<T>(sum);
      }
  });
}

void moe_combine_backward(const Tensor& dout, const Tensor& y_slots, const Tensor& probs,
                          Tensor& dy_slots, Tensor& dprobs, Stream&) {
  const int64_t tokens = dout.dim(0), width = dout.dim(1), k = probs.dim(1);
  storage_dispatch(dout.dtype(), "moe_combine_backward", [&]<typename T>() {
    using C = compute_t<T>;
    expect_statistics_dtype<T>("moe_combine_backward", "probs", probs);
    expect_statistics_dtype<T>("moe_combine_backward", "dprobs", dprobs);
    const T* d = dout.data<T>();
    const T* y = y_slots.data<T>();
    const C* p = probs.data<C>();
    T* dy = dy_slots.data<T>();
    C* dp = dprobs.data<C>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < tokens; ++n)
      for (int64_t j = 0; j < k; ++j) {
        const int64_t slot = n * k + j;
        double dot = 0;
        for (int64_t c = 0; c < width; ++c) {
          dy[slot * width + c] = narrow<T>(p[slot] * widen(d[n * width + c]));
          dot += static_cast<double>(widen(d[n * width + c])) * widen(y[slot * width + c]);
        }
        dp[slot] = static_cast<C>(dot);
      }
  });
}

}  // namespace moe::cpu
