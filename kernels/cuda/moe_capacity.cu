// Expert capacity on CUDA, with the CPU reference's semantics (kernels/cpu/moe_capacity.cpp).
// sorted_slots, probs (f32), kept_slots and kept_counts are on the device; counts on the host.
// - The host knows every group's offset and how many slots it keeps (min(count, capacity)), so it
//   computes R itself. That plan (read offset, count, write offset, keep per expert) goes to the
//   device in one copy from a host vector; the op synchronizes the stream before returning, so the
//   vector outlives the copy whatever the driver does with pageable memory (and kept_slots and
//   kept_counts are ready when R is).
// - One block of kBlock threads per expert group. DropPolicy::position, and any group within
//   capacity, copy the group's first `keep` slots.
// - DropPolicy::probs on an over-full group ranks each slot by a 64-bit key: the prob's bits mapped
//   to an unsigned order (NaN as -inf, -0 as +0, so the order is the CPU's double comparison) above
//   the complemented slot (ties to the lower slot). The keys are distinct, so a radix select (8
//   passes of 8 bits, a 256-bin shared histogram each) finds the keep-th largest exactly, and a
//   slot is kept when its key is at least that one. The kept slots are then compacted in their
//   original order (warp ballots and a prefix over the block's warps). Cost: 9 reads of the group.
// - kept_slots may be sorted_slots itself (as on the CPU); blocks run concurrently, so the input is
//   then copied to scratch first.
// - A slot outside [0, probs.numel()) (the CPU rejects it) ranks last and is never used as an
//   index.
#include <algorithm>
#include <vector>

#include "kernels/cuda/launch.cuh"

namespace moe::cuda {

namespace {

constexpr int kBlock = 1024;
constexpr int kBins = 256;

struct GroupPlan {
  int64_t read, count, write, keep;
};

__device__ __forceinline__ uint64_t rank_key(const float* probs, int64_t num_probs, int32_t slot) {
  const bool valid = slot >= 0 && slot < num_probs;
  float p = valid ? probs[slot] : -INFINITY;
  if (isnan(p)) p = -INFINITY;
  if (p == 0.0f) p = 0.0f;  // -0 and +0 tie, as in the CPU's comparison
  uint32_t bits = __float_as_uint(p);
  bits = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;  // unsigned order = float order
  const uint32_t slot_rank = valid ? 0xffffffffu - static_cast<uint32_t>(slot) : 0u;
  return static_cast<uint64_t>(bits) << 32 | slot_rank;
}

// The keep-th largest key of the group (1 <= keep <= count); every thread gets it.
__device__ uint64_t select_threshold(const int32_t* group, int64_t count, int64_t keep,
                                     const float* probs, int64_t num_probs) {
  __shared__ unsigned histogram[kBins];
  __shared__ uint64_t prefix;
  __shared__ int64_t remaining;  // rank wanted among the keys that match prefix
  if (threadIdx.x == 0) prefix = 0, remaining = keep;
  for (int shift = 56; shift >= 0; shift -= 8) {
    const uint64_t high = shift == 56 ? 0 : ~0ull << (shift + 8);  // the digits already chosen
    for (int b = threadIdx.x; b < kBins; b += blockDim.x) histogram[b] = 0;
    __syncthreads();
    const uint64_t chosen = prefix;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
      const uint64_t key = rank_key(probs, num_probs, group[i]);
      if ((key & high) == chosen) atomicAdd(&histogram[key >> shift & 0xff], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int digit = kBins - 1;
      while (digit > 0 && histogram[digit] < remaining) remaining -= histogram[digit--];
      prefix |= static_cast<uint64_t>(digit) << shift;
    }
    __syncthreads();
  }
  return prefix;
}

__global__ void apply_capacity_kernel(const int32_t* sorted_slots, const GroupPlan* plans,
                                      const float* probs, int64_t num_probs, bool rank_by_probs,
                                      int32_t* kept_slots, int64_t* kept_counts) {
  __shared__ int warp_counts[kBlock / kWarp];
  const GroupPlan plan = plans[blockIdx.x];
  const int32_t* group = sorted_slots + plan.read;
  int32_t* out = kept_slots + plan.write;
  if (threadIdx.x == 0) kept_counts[blockIdx.x] = plan.keep;
  if (!rank_by_probs || plan.keep == plan.count) {
    for (int64_t i = threadIdx.x; i < plan.keep; i += blockDim.x) out[i] = group[i];
    return;
  }
  if (plan.keep == 0) return;
  const uint64_t threshold = select_threshold(group, plan.count, plan.keep, probs, num_probs);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  int64_t written = 0;
  for (int64_t start = 0; start < plan.count; start += blockDim.x) {
    const int64_t i = start + threadIdx.x;
    const int32_t slot = i < plan.count ? group[i] : 0;
    const bool kept = i < plan.count && rank_key(probs, num_probs, slot) >= threshold;
    const unsigned ballot = __ballot_sync(0xffffffffu, kept);
    if (lane == 0) warp_counts[warp] = __popc(ballot);
    __syncthreads();
    int64_t before = written;
    for (int w = 0; w < static_cast<int>(blockDim.x / kWarp); ++w) {
      if (w < warp) before += warp_counts[w];
      written += warp_counts[w];
    }
    if (kept) out[before + __popc(ballot & ((1u << lane) - 1u))] = slot;
    __syncthreads();  // warp_counts is rewritten by the next chunk
  }
}

}  // namespace

int64_t moe_apply_capacity(const Tensor& sorted_slots, const Tensor& counts, const Tensor& probs,
                           int64_t capacity, DropPolicy policy, Tensor& kept_slots,
                           Tensor& kept_counts, Stream& stream) {
  MOE_CHECK(probs.dtype() == DType::f32, "moe_apply_capacity: probs dtype ",
            dtype_name(probs.dtype()), " is not supported on cuda (router outputs are f32)");
  const int64_t experts = counts.numel();
  const int64_t* count = counts.data<int64_t>();
  std::vector<GroupPlan> plans(static_cast<size_t>(experts));
  int64_t read = 0, written = 0;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t keep = std::min(count[e], capacity);
    plans[e] = {read, count[e], written, keep};
    read += count[e];
    written += keep;
  }
  if (experts == 0) return 0;
  use_device(sorted_slots);
  const cudaStream_t s = stream_of(stream);
  const Device device = sorted_slots.device();
  Tensor device_plans = Tensor::empty(
      {experts * static_cast<int64_t>(sizeof(GroupPlan) / sizeof(int64_t))}, DType::i64, device);
  if (!upload_staged(plans.data(), device_plans.raw(), device_plans.nbytes(), device, stream))
    MOE_CUDA_CHECK(cudaMemcpyAsync(device_plans.raw(), plans.data(), device_plans.nbytes(),
                                   cudaMemcpyHostToDevice, s));
  Tensor input = sorted_slots;
  if (kept_slots.shares_storage_with(sorted_slots) && sorted_slots.numel() > 0) {
    input = Tensor::empty(sorted_slots.shape(), DType::i32, device);
    MOE_CUDA_CHECK(cudaMemcpyAsync(input.raw(), sorted_slots.raw(), sorted_slots.nbytes(),
                                   cudaMemcpyDeviceToDevice, s));
  }
  apply_capacity_kernel<<<static_cast<unsigned>(experts), kBlock, 0, s>>>(
      ptr<int32_t>(input), ptr<GroupPlan>(device_plans), ptr<float>(probs), probs.numel(),
      policy == DropPolicy::probs, ptr<int32_t>(kept_slots), ptr<int64_t>(kept_counts));
  MOE_CUDA_CHECK_LAUNCH();
  return written;  // plans may go: both kinds of upload have copied it before returning
}

}  // namespace moe::cuda
