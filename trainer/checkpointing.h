// The trainer's side of checkpoints: what of the model, AdamW and the data loader goes into one
// (checkpoint/checkpoint.h) and how a run resumes from it.
//
// Decisions:
// - checkpoint.resume: auto resumes from the newest committed step directory in checkpoint.dir and
//   starts fresh when there is none (the setting preemptible jobs need: the same command restarts
//   or continues); none always starts fresh; anything else is a step directory that must exist.
// - A checkpoint saved under another layout (tp, dp, ep, expert_tp, zero) loads as is: parameters
//   and moments are resharded by reading other blocks. The global batch may change too; the loader
//   then continues from the same number of consumed samples.
#pragma once

#include <string>

#include "checkpoint/checkpoint.h"
#include "data/token_loader.h"
#include "trainer/config.h"
#include "trainer/optimizer.h"

namespace moe {

struct TrainerState {
  const Config& config;
  ParameterStore& store;
  AdamW& optimizer;
  TokenLoader& loader;
  const ParallelGroups& groups;
};

// The step directory checkpoint.resume names, "" to start fresh.
std::string resume_directory(const CheckpointConfig& checkpoint);
// Loads `dir` into the state; returns the checkpoint's metadata (its step is where training goes
// on).
CheckpointMeta resume_from(TrainerState& state, const std::string& dir);
// Saves the state after `step` optimizer steps under checkpoint.dir and prunes to keep_last.
std::string save_state(TrainerState& state, int64_t step, Stream& stream);

}  // namespace moe
