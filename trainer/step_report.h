// The log line and the metrics record of one log interval, made from the figures the training
// loop gathers, so that their format is tested without training.
//
// Decisions:
// - Interval averages (loss, aux terms, gradient norm) and the rates since the previous line, so a
//   slow step shows up instead of being averaged away.
// - The line and the record hold the same figures in the same order. Per MoE layer the record has
//   the interval's expert load in full ("load.layer<i>": tokens per expert), the line its max/mean,
//   coefficient of variation and idle experts.
// - No collectives here: the communication volume and the EP group's expert work come in gathered,
//   so a report only formats.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "trainer/metrics.h"
#include "trainer/train_step.h"

namespace moe {

struct StepFigures {
  int64_t step = 0;         // steps done, the interval's last included
  int64_t total_steps = 0;  // train.steps
  StepStats interval;       // sums over the interval's steps
  double lr = 0;            // of the last step
  double tokens_per_s = 0;  // over the interval's training time
  double elapsed_s = 0;     // since training began
  double eta_s = 0;
  bool has_moe = false;            // the line shows the aux and z losses
  bool has_mtp = false;            // the line shows the multi-token prediction loss
  bool counts_dropped = false;     // moe.capacity_factor > 0: the record has the dropped tokens
  std::optional<CommVolume> comm;  // jobs of several ranks: the bytes this rank sent
  // With expert parallelism: per MoE layer, in block order, the most token rows an EP rank's
  // experts processed over the mean of the ranks (1 = even).
  std::vector<double> expert_work;
};

struct StepReport {
  std::string line;
  MetricRecord record;
};

StepReport step_report(const StepFigures& figures);

}  // namespace moe
