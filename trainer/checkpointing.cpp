#include "trainer/checkpointing.h"

#include <filesystem>
#include <utility>

#include "upcycling/bts_model.h"

namespace moe {

std::string resume_directory(const CheckpointConfig& checkpoint) {
  if (checkpoint.resume == "none") return "";
  if (checkpoint.resume == "auto")
    return checkpoint.dir.empty() ? "" : latest_checkpoint(checkpoint.dir);
  MOE_CHECK(std::filesystem::is_directory(checkpoint.resume), "checkpoint.resume = '",
            checkpoint.resume, "' is not a directory (use auto, none or a step directory)");
  return checkpoint.resume;
}

CheckpointMeta resume_from(TrainerState& state, const std::string& dir) {
  const CheckpointMeta meta =
      load_checkpoint(dir, {&state.store, true, state.optimizer.moment_runs()}, state.groups,
                      bts_checkpoint_changes(dir, state.config));
  if (meta.has_optimizer_state) state.optimizer.set_steps_taken(meta.step);
  state.loader.set_train_position(meta.consumed_samples);
  return meta;
}

namespace {

CheckpointMeta meta_of(const TrainerState& state, int64_t step) {
  const Config& config = state.config;
  CheckpointMeta meta;
  meta.step = step;
  meta.consumed_samples = state.loader.train_position();
  meta.consumed_tokens = meta.consumed_samples * config.data.seq_len;
  meta.seed = config.train.seed;
  meta.config_yaml = to_yaml(config);
  meta.tp = group_size(state.groups.tp);
  meta.dp = group_size(state.groups.dp);
  meta.ep = group_size(state.groups.ep);
  meta.expert_tp = state.groups.expert_tp;
  meta.zero = config.parallel.zero;
  meta.attachments = state.attachments;
  return meta;
}

// Writes, then prunes to keep_last; every rank of groups.world calls it.
std::string write(const CheckpointConfig& checkpoint, const RankState& rank_state,
                  const CheckpointMeta& meta, const ParallelGroups& groups) {
  const std::string dir = save_checkpoint(checkpoint.dir, rank_state, meta, groups);
  if (group_rank(groups.world) == 0) clean_checkpoints(checkpoint.dir, checkpoint.keep_last);
  if (group_size(groups.world) > 1) groups.world->barrier();
  return dir;
}

}  // namespace

std::string save_state(TrainerState& state, int64_t step) {
  return write(state.config.checkpoint, {&state.store, true, state.optimizer.moment_runs()},
               meta_of(state, step), state.groups);
}

CheckpointWriter::CheckpointWriter(TrainerState& state, std::function<void()> before_write)
    : state_(state), io_groups_(state.groups), before_write_(std::move(before_write)) {
  if (!state.config.checkpoint.async || state.config.checkpoint.dir.empty()) return;
  if (group_size(state.groups.world) > 1) {
    check_background_io_support();
    io_world_ = state.groups.world->split(0, state.groups.world->rank());
    io_groups_.world = io_world_.get();
  }
}

CheckpointWriter::~CheckpointWriter() {
  if (writer_.joinable()) writer_.join();
}

std::string CheckpointWriter::save(int64_t step) {
  if (!state_.config.checkpoint.async) return save_state(state_, step);
  finish();
  std::shared_ptr<ParameterStore> snapshot = state_.store.snapshot();
  std::vector<MomentRun> moments = state_.optimizer.moment_runs();
  for (MomentRun& run : moments) {
    run.exp_avg = run.exp_avg.clone();
    run.exp_avg_sq = run.exp_avg_sq.clone();
    // The snapshot's copy of the parameter: FSSDP resharding may change the live one's placement
    // while this save is being written.
    run.parameter = &std::as_const(*snapshot).find(run.parameter->name);
  }
  const CheckpointMeta meta = meta_of(state_, step);
  writer_ = std::thread([this, snapshot, moments, meta] {
    try {
      if (before_write_) before_write_();
      write(state_.config.checkpoint, {snapshot.get(), true, moments}, meta, io_groups_);
    } catch (...) {
      error_ = std::current_exception();
    }
  });
  return (std::filesystem::path(state_.config.checkpoint.dir) / step_dir_name(step)).string();
}

void CheckpointWriter::finish() {
  if (writer_.joinable()) writer_.join();
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace moe
