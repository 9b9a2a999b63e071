// AdamW over a ParameterStore: moments in the store's dtype (fp32 when training), decoupled weight
// decay only on parameters declared with weight_decay (norm weights and biases never; the
// embedding unless train.no_decay_embeddings), and clipping by the global gradient norm.
//
// ZeRO-1 (parallel.zero: 1): given a data-parallel group, each rank owns one contiguous 1/dp slice
// of the flat parameter arena and keeps moments for it alone. A step reduce-scatters the (not yet
// averaged) gradients so that each rank receives the averaged gradient of its slice, takes the
// global norm from the slices' sums of squares, updates its slice and all-gathers the parameters.
// The arithmetic per element is the same as without sharding, so the numbers match to rounding.
#pragma once

#include "layers/parameters.h"
#include "parallel/communicator.h"
#include "trainer/config.h"

namespace moe {

class AdamW {
 public:
  // shard_group: the data-parallel group to shard the moments over (null or one rank: no sharding).
  AdamW(ParameterStore& store, const TrainConfig& train, Communicator* shard_group = nullptr);

  // Clips the gradients (train.grad_clip; 0 = off), then updates every parameter at learning rate
  // lr. Returns the gradient norm before clipping. Steps count from 1 for the bias correction.
  // Sharded, the gradients must be each rank's own sums (the step averages them); otherwise they
  // must already be averaged.
  double step(double lr, Stream& stream);
  bool shards() const { return shard_group_ != nullptr; }
  int64_t moment_elements() const { return m_.numel(); }
  int64_t steps_taken() const { return step_; }

 private:
  // The averaged gradient of the owned range [lo_, hi_).
  Tensor owned_gradient(Stream& stream);

  ParameterStore& store_;
  const TrainConfig& train_;
  Communicator* shard_group_ = nullptr;
  int64_t lo_ = 0, hi_ = 0, shard_ = 0;  // owned range of the flat arena; padded slice size
  Tensor m_, v_;
  int64_t step_ = 0;
};

}  // namespace moe
