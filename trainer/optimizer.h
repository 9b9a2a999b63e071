// AdamW over a ParameterStore: moments in the store's dtype (fp32 when training), decoupled weight
// decay only on parameters declared with weight_decay (norm weights and biases never; the
// embedding unless train.no_decay_embeddings), and clipping by the global gradient norm.
//
// The global norm counts every element of the global model once: TP-split blocks on every TP rank,
// TP copies on TP rank 0 only, replicas over data parallelism on one of them only; the counted
// sums of squares are all-reduced over the world.
//
// ZeRO-1 (parallel.zero: 1): each parameter group's part of the flat arena (dense, experts) is
// split into contiguous slices over the group that reduces its gradients (dp, edp); each rank
// keeps moments for its slices alone. A step reduce-scatters the (not yet averaged) gradients so
// that each rank receives the averaged gradient of its slice, updates its slice and all-gathers the
// parameters. The arithmetic per element is the same as without sharding. Under FSSDP each expert
// is whole on its owner already (its moments with it, moved when owners move), so ZeRO-1 leaves
// the expert group unsharded and shards the dense one.
#pragma once

#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/run_config.h"
#include "layers/parameters.h"
#include "parallel/parallel_groups.h"

namespace moe {

class AdamW {
 public:
  // zero: shard the moments (ZeRO-1) over the data-parallel groups; owned_experts: the experts are
  // placed by FSSDP (their group is not sharded).
  AdamW(ParameterStore& store, const TrainConfig& train, const ParallelGroups& groups = {},
        bool zero = false, bool owned_experts = false);

  // Clips the gradients (train.grad_clip; 0 = off), then updates every parameter at learning rate
  // lr. Returns the gradient norm before clipping. Steps count from 1 for the bias correction.
  // With zero the gradients must be each rank's own sums (the step averages them); otherwise they
  // must already be averaged (average_gradients).
  // A norm that is not finite (an overflow in the loss or the gradients) skips the update: no
  // value, moment or step count changes; the norm is returned for the caller to count.
  double step(double lr, Stream& stream);
  bool averages_gradients() const { return zero_; }
  // This rank's moments, one run per parameter it holds moments of, as views: checkpoints write
  // them and read into them (primary: the one copy that is written, as the norm counts it).
  std::vector<MomentRun> moment_runs();
  // After loading moments: the number of steps taken (the bias correction's count).
  void set_steps_taken(int64_t steps) { step_ = steps; }
  int64_t moment_elements() const;
  int64_t steps_taken() const { return step_; }

 private:
  // One parameter group's range of the arena and the slice [lo, hi) of it this rank updates.
  struct Segment {
    ParamGroup group;
    ArenaRange range;
    Communicator* shard_group = nullptr;  // null: not sharded
    int64_t lo = 0, hi = 0, slice = 0;    // owned range (arena offsets); padded slice size
    Tensor m, v;
  };
  // The averaged gradient of the owned range.
  Tensor owned_gradient(const Segment& segment, Stream& stream);
  // Whether this rank's owned part of p in the segment is the copy that counts (see the header).
  bool primary(const Segment& segment, const Parameter& p) const;
  // Adds the sum of squares of this rank's counted elements of the owned gradient to squares
  // (f64 [1] where the gradients are).
  void add_counted_squares(const Segment& segment, const Tensor& grad, Tensor& squares,
                           Stream& stream) const;

  ParameterStore& store_;
  const TrainConfig& train_;
  ParallelGroups groups_;
  bool zero_;
  std::vector<Segment> segments_;
  int64_t step_ = 0;
};

}  // namespace moe
