// A training run set up for the loop: the resolved config, the model, its optimizer, the data and
// the writers of checkpoints and metrics, with the model at the step the run starts from.
//
// Decisions:
// - The constructor is the setup, in the order its log lines read. The parts refer to each other
//   (AdamW and the checkpoint state to the parameter store, the checkpoint writer to the state), so
//   a run is neither copied nor moved.
// - Where a run starts: a checkpoint that checkpoint.resume names or finds comes first, and init.*
//   is then ignored. A fresh run with init.method = load takes init.from's weights with a fresh
//   optimizer and schedule (fine-tuning, BTS branches); any other method but scratch upcycles
//   init.from into step 0 of checkpoint.dir, which the run then resumes from like any checkpoint.
// - The places the run writes to (checkpoint.dir, log.metrics_file) are checked by a real write
//   before any checkpoint is cleaned up or loaded (output_paths.h).
// - The metrics file is opened last: a run that fails to start leaves the previous run's file as
//   it was.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "config/run_config.h"
#include "data/token_loader.h"
#include "kernels/ops.h"
#include "layers/language_model.h"
#include "parallel/parallel_groups.h"
#include "trainer/checkpointing.h"
#include "trainer/metrics.h"
#include "trainer/optimizer.h"

namespace moe {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct TrainingRun {
  // Collective: every rank of the job builds its run from the same config.
  TrainingRun(const Config& requested, const ParallelGroups& groups);

  const ParallelGroups& groups;
  std::string resume_dir;  // the step directory the run resumed from; empty for a fresh start
  const Config config;     // with a BTS model's real shape (resolve_model_config)
  const Device device;
  const Clock::time_point start;  // of the run, once its device is known
  const std::unique_ptr<TokenLoader> loader;
  ParameterStore store;
  const std::unique_ptr<LanguageModel> model;
  AdamW optimizer;
  ops::OwnedStream stream;
  const int64_t tokens_per_step;  // over the whole job
  const bool has_moe;             // a decoder with MoE layers
  TrainerState state;
  CheckpointWriter writer;
  int64_t first_step = 0;         // the step training goes on from
  MetricsWriter metrics;          // world rank 0's; disabled on the other ranks
  Clock::time_point train_start;  // the end of the setup
};

}  // namespace moe
