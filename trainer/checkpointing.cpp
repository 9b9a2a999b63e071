#include "trainer/checkpointing.h"

#include <filesystem>

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
  const int64_t n = state.store.numel();
  Tensor exp_avg = Tensor::zeros({n}, state.store.dtype()),
         exp_avg_sq = Tensor::zeros({n}, state.store.dtype());
  const CheckpointMeta meta =
      load_checkpoint(dir, {&state.store, &exp_avg, &exp_avg_sq}, state.groups);
  state.optimizer.load_moments(exp_avg, exp_avg_sq, meta.step);
  state.loader.set_train_position(meta.consumed_samples);
  return meta;
}

std::string save_state(TrainerState& state, int64_t step, Stream& stream) {
  const Config& config = state.config;
  auto [exp_avg, exp_avg_sq] = state.optimizer.local_moments(stream);
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
  const std::string dir = save_checkpoint(
      config.checkpoint.dir, {&state.store, &exp_avg, &exp_avg_sq}, meta, state.groups);
  if (group_rank(state.groups.world) == 0)
    clean_checkpoints(config.checkpoint.dir, config.checkpoint.keep_last);
  if (group_size(state.groups.world) > 1) state.groups.world->barrier();
  return dir;
}

}  // namespace moe
