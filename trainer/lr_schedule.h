// Learning-rate schedules: the learning rate of one optimizer step, as a pure function of the run
// config and the step, so resuming needs no schedule state.
//
// Decisions:
// - `step` counts optimizer steps from 0 (the first update is step 0, the last is steps - 1).
// - Warmup is linear and ends at lr: step s < warmup_steps gets lr * (s + 1) / warmup_steps, so the
//   first update is small but not wasted at zero, and step warmup_steps - 1 runs at the peak.
// - Decay runs from lr at step warmup_steps to min_lr at step `steps` (one past the last update, as
//   in Megatron and nanoGPT); steps beyond that keep min_lr.
//     cosine:   min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2, p = progress through the decay
//     linear:   lr + (min_lr - lr) * p
//     constant: lr (min_lr is unused)
//     wsd:      lr until the last decay_fraction of the steps (never before warmup ends), then
//     linear
//               to min_lr; decay_fraction = 0 keeps lr throughout.
#pragma once

#include <cstdint>

#include "config/run_config.h"

namespace moe {

// The learning rate of optimizer step `step` (>= 0). Throws InputError for a negative step or a
// schedule name it does not know.
double learning_rate(const TrainConfig& train, int64_t step);

}  // namespace moe
