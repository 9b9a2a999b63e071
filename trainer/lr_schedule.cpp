#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace moe {
namespace {

// Progress in [0, 1] from step `start` (lr) to step `end` (min_lr).
double decay_progress(int64_t step, double start, double end) {
  if (end <= start) return 1.0;
  return std::clamp((static_cast<double>(step) - start) / (end - start), 0.0, 1.0);
}

}  // namespace

double learning_rate(const TrainConfig& train, int64_t step) {
  MOE_CHECK(step >= 0, "learning_rate: step ", step, " is negative; steps count from 0");
  const int64_t warmup = train.warmup_steps;
  if (step < warmup) return train.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);

  const double steps = train.steps;
  const double decay_from = static_cast<double>(warmup);
  switch (train.schedule) {
    case LrSchedule::constant:
      return train.lr;
    case LrSchedule::cosine: {
      const double p = decay_progress(step, decay_from, steps);
      return train.min_lr +
             (train.lr - train.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
    }
    case LrSchedule::linear:
      return train.lr + (train.min_lr - train.lr) * decay_progress(step, decay_from, steps);
    case LrSchedule::wsd: {
      if (train.decay_fraction <= 0.0) return train.lr;
      const double stable_until = std::max(decay_from, steps - train.decay_fraction * steps);
      return train.lr + (train.min_lr - train.lr) * decay_progress(step, stable_until, steps);
    }
  }
  MOE_THROW(InternalError, "train.schedule ", static_cast<int>(train.schedule), " has no formula");
}

}  // namespace moe
