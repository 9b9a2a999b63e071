// The training loop behind moe-train: set up the run (training_run.h), then train with AdamW and
// the configured schedule, log and record every log.interval steps (step_report.h), evaluate, and
// save checkpoints.
//
// Decisions:
// - A step whose loss or gradient norm is not finite makes no update and is counted; more than
//   train.max_nonfinite_steps in a row stop the run with an error naming the step: training past
//   them only wastes compute.
// - Evaluation scores the same validation sequences every time (eval_batches global batches, or
//   fewer when the split is smaller; evaluation.h), shared out over the data-parallel ranks, at
//   every eval_interval steps and after the last step.
// - A stop signal (stop_signal.h) ends the run after the same step on every rank: the interval is
//   logged and a checkpoint saved (when checkpoint.dir is set), as after the last step, but there
//   is no evaluation.
// - The steps run under a Watchdog (watchdog.h): a step that outlasts train.step_timeout_s logs the
//   step and phase and aborts every rank. Setup before and the sample after are not watched.
#pragma once

#include <cstdint>
#include <string>

#include "config/run_config.h"
#include "parallel/parallel_groups.h"

namespace moe {

struct TrainingOptions {
  int64_t sample_tokens = 0;  // generate this many tokens after training (0 = none)
  std::string sample_prompt = "And God said";
  bool profile = false;  // print the time per op after training
};

struct TrainingSummary {
  int64_t steps = 0;
  double train_loss = 0;  // mean over the last log interval
  double val_loss = 0;    // last evaluation, mean over the validation sets (NaN if none)
  double tokens_per_s = 0;
  double wall_s = 0;
  std::string sample;
};

// The device this rank trains on: the CPU, or for train.device = cuda the GPU at this rank's
// position among the ranks on its node. InputError when train.device is cuda and no GPU can be
// used (a build without CUDA, no driver or no device) or the node has more ranks than GPUs.
Device training_device(const TrainConfig& train, Communicator* world);

// groups: this rank's parallel groups (ProcessGrid::groups; {} trains alone). Every rank of the
// job calls train_model with the same config; each data-parallel rank reads its slice of every
// global batch. Only world rank 0 writes metrics and the sample; every rank logs.
TrainingSummary train_model(const Config& config, const TrainingOptions& options,
                            const ParallelGroups& groups = {});

}  // namespace moe
