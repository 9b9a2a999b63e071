#include "trainer/checkpointing.h"

#include <filesystem>
#include <utility>

#include "config/yaml_io.h"
#include "core/log.h"
#include "kernels/ops.h"
#include "upcycling/bts_model.h"

namespace moe {

std::string resume_directory(const CheckpointConfig& checkpoint) {
  if (checkpoint.resume == "none") return "";
  if (checkpoint.resume == "auto")
    return checkpoint.dir.empty() ? "" : latest_checkpoint(checkpoint.dir);
  MOE_CHECK(std::filesystem::is_directory(checkpoint.resume), "checkpoint.resume = '",
            checkpoint.resume, "' is not a directory (use auto, none or a step directory)");
  expect_committed(checkpoint.resume);
  return checkpoint.resume;
}

namespace {

// The training state as HDF5 needs it, in host memory: the live state for a store on the host, a
// copy of it for one on a GPU or for a background write (which must not see training go on).
struct HostState {
  std::shared_ptr<ParameterStore> copy;  // null when `store` is the live one
  ParameterStore* store = nullptr;
  std::vector<MomentRun> moments;
};

HostState host_state(TrainerState& state, bool copy) {
  HostState host{nullptr, &state.store, state.optimizer.moment_runs()};
  if (!copy && state.store.device().is_cpu()) return host;
  host.copy = state.store.snapshot();
  host.store = host.copy.get();
  Stream stream{state.store.device(), nullptr};
  for (MomentRun& run : host.moments) {
    run.exp_avg = ops::host_copy(run.exp_avg, stream);
    run.exp_avg_sq = ops::host_copy(run.exp_avg_sq, stream);
    // The copy's parameter: FSSDP resharding may change the live one's placement while a
    // background save is being written.
    run.parameter = &std::as_const(*host.copy).find(run.parameter->name);
  }
  return host;
}

// After loading into a host copy: its values, buffers and (when loaded) moments go to the live
// state, whose compute copies (bf16) then follow its values.
void copy_back(const HostState& host, TrainerState& state, bool moments) {
  if (!host.copy) return;
  Stream stream{state.store.device(), nullptr};
  ops::copy(host.copy->values(), state.store.values(), stream);
  for (size_t i = 0; i < host.copy->buffers().size(); ++i)
    ops::copy(host.copy->buffers()[i].value, state.store.buffers()[i].value, stream);
  const std::vector<MomentRun> live =
      moments ? state.optimizer.moment_runs() : std::vector<MomentRun>{};
  for (size_t i = 0; i < live.size(); ++i) {
    Tensor m = live[i].exp_avg, v = live[i].exp_avg_sq;
    ops::copy(host.moments[i].exp_avg, m, stream);
    ops::copy(host.moments[i].exp_avg_sq, v, stream);
  }
  state.store.refresh_compute(stream);
  ops::synchronize(stream);
}

}  // namespace

namespace {

CheckpointMeta load_into(const HostState& host, const TrainerState& state, const std::string& dir) {
  return load_checkpoint(dir, {host.store, true, host.moments}, state.groups,
                         bts_checkpoint_changes(dir, state.config));
}

// The loaded host state and the checkpoint's position become the live state.
void take_loaded(const HostState& host, TrainerState& state, const CheckpointMeta& meta) {
  copy_back(host, state, true);
  if (meta.has_optimizer_state) state.optimizer.set_steps_taken(meta.step);
  state.loader.set_train_position(meta.consumed_samples);
}

}  // namespace

CheckpointMeta resume_from(TrainerState& state, const std::string& dir) {
  const HostState host = host_state(state, false);
  const CheckpointMeta meta = load_into(host, state, dir);
  take_loaded(host, state, meta);
  return meta;
}

ResumePoint resume_from_newest_loadable(TrainerState& state, const std::string& root) {
  std::string skipped;
  for (const std::string& dir : committed_checkpoints(root)) {
    const HostState host = host_state(state, true);
    ResumePoint point{dir, {}};
    std::string problem;
    try {
      point.meta = load_into(host, state, dir);
    } catch (const InputError& e) {
      problem = e.what();
    } catch (const CheckpointError& e) {
      problem = e.what();
    }
    if (!any_rank_failed(problem, state.groups.world)) {
      take_loaded(host, state, point.meta);
      return point;
    }
    if (problem.empty()) problem = "it did not load on another rank";
    MOE_LOG_WARN("checkpoint.resume = auto: skipping ", dir, ", which does not load (", problem,
                 "); trying the next older checkpoint");
    skipped += (skipped.empty() ? "" : "; ") + dir + ": " + problem;
  }
  MOE_THROW(InputError, "checkpoint.resume = auto: no committed checkpoint in '", root, "' loads (",
            skipped, "); fix or remove them, or set checkpoint.resume = none");
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

void load_weights(TrainerState& state, const std::string& dir) {
  const HostState host = host_state(state, false);
  load_checkpoint(dir, {host.store, false, {}}, state.groups);
  copy_back(host, state, false);
}

std::string save_state(TrainerState& state, int64_t step) {
  const HostState host = host_state(state, false);
  return write(state.config.checkpoint, {host.store, true, host.moments}, meta_of(state, step),
               state.groups);
}

CheckpointWriter::CheckpointWriter(TrainerState& state, std::function<void()> before_write)
    : state_(state), io_groups_(state.groups), before_write_(std::move(before_write)) {
  if (!state.config.checkpoint.async || state.config.checkpoint.dir.empty()) return;
  if (group_size(state.groups.world) > 1) {
    check_background_io_support();
    io_world_ = state.groups.world->host().split(0, state.groups.world->rank());
    io_groups_.world = io_world_.get();
  }
}

CheckpointWriter::~CheckpointWriter() {
  if (writer_.joinable()) writer_.join();
}

std::string CheckpointWriter::save(int64_t step) {
  if (!state_.config.checkpoint.async) return save_state(state_, step);
  finish();
  const HostState host = host_state(state_, true);
  const CheckpointMeta meta = meta_of(state_, step);
  writer_ = std::thread([this, host, meta] {
    try {
      if (before_write_) before_write_();
      write(state_.config.checkpoint, {host.store, true, host.moments}, meta, io_groups_);
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
