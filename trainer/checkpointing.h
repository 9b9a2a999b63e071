// The trainer's side of checkpoints: what of the model, AdamW and the data loader goes into one
// (checkpoint/checkpoint.h) and how a run resumes from it.
//
// Decisions:
// - checkpoint.resume: auto resumes from the newest committed step directory in checkpoint.dir and
//   starts fresh when there is none (the setting preemptible jobs need: the same command restarts
//   or continues); none always starts fresh; anything else is a step directory that must exist
//   and be committed (checked before the run's clean-up, which would remove an uncommitted one).
// - auto falls back: a committed checkpoint that does not load (damaged: a checksum, a truncated
//   file, a missing tensor) is skipped with a warning and the next older one is tried. Each try
//   loads into a host copy of the state, which reaches the live state only once every rank has
//   loaded it, so a failed try leaves nothing half-loaded and all ranks go on from the same one.
//   A named step directory never falls back: a damaged one is an error.
// - A checkpoint saved under another layout (tp, dp, ep, expert_tp, zero) loads as is: parameters
//   and moments are resharded by reading other blocks. The global batch may change too; the loader
//   then continues from the same number of consumed samples.
#pragma once

#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "config/run_config.h"
#include "data/token_loader.h"
#include "trainer/optimizer.h"

namespace moe {

struct TrainerState {
  const Config& config;
  ParameterStore& store;
  AdamW& optimizer;
  TokenLoader& loader;
  const ParallelGroups& groups;
  std::map<std::string, std::string> attachments = {};  // LanguageModel::checkpoint_attachments
};

// The step directory checkpoint.resume names, "" to start fresh.
std::string resume_directory(const CheckpointConfig& checkpoint);
// Loads `dir` into the state; returns the checkpoint's metadata (its step is where training goes
// on).
CheckpointMeta resume_from(TrainerState& state, const std::string& dir);

struct ResumePoint {
  std::string dir;
  CheckpointMeta meta;
};
// checkpoint.resume: auto: loads the newest committed checkpoint under `root` that loads on every
// rank, warning about each one skipped; an InputError naming them all when none does. Collective.
ResumePoint resume_from_newest_loadable(TrainerState& state, const std::string& root);
// Loads only the weights of `dir` (init.method: load): moments and position stay as they are.
void load_weights(TrainerState& state, const std::string& dir);
// Saves the state after `step` optimizer steps under checkpoint.dir and prunes to keep_last.
std::string save_state(TrainerState& state, int64_t step);

// Saves for the training loop, synchronously or, with checkpoint.async, in the background:
// save() copies the parameters, moments and loader position into host buffers (all that training
// waits for) and a thread writes them through its own duplicate of the world communicator (so MPI
// must run with MPI_THREAD_MULTIPLE) while training goes on. A save first waits for the one before,
// so at most one is in flight; finish() waits for it and rethrows its error.
class CheckpointWriter {
 public:
  // before_write runs in the writer thread before it writes (tests hold the writer back with it).
  explicit CheckpointWriter(TrainerState& state, std::function<void()> before_write = {});
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Returns the step directory, published (synchronous) or being written (asynchronous).
  std::string save(int64_t step);
  void finish();

 private:
  TrainerState& state_;
  std::unique_ptr<Communicator> io_world_;
  ParallelGroups io_groups_;
  std::function<void()> before_write_;
  std::thread writer_;
  std::exception_ptr error_;
};

}  // namespace moe
