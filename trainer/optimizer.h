// AdamW over a ParameterStore: fp32 moments in two arenas shaped like the parameter arena,
// decoupled weight decay only on parameters declared with weight_decay (norm weights and biases
// never; the embedding unless train.no_decay_embeddings), and clipping by the global gradient norm.
#pragma once

#include "layers/parameters.h"
#include "trainer/config.h"

namespace moe {

class AdamW {
 public:
  AdamW(ParameterStore& store, const TrainConfig& train);

  // Clips the gradients (train.grad_clip; 0 = off), then updates every parameter at learning rate
  // lr. Returns the gradient norm before clipping. Steps count from 1 for the bias correction.
  double step(double lr, Stream& stream);
  int64_t steps_taken() const { return step_; }

 private:
  ParameterStore& store_;
  const TrainConfig& train_;
  Tensor m_, v_;
  int64_t step_ = 0;
};

}  // namespace moe
