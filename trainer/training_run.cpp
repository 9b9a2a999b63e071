#include "trainer/training_run.h"

#include <filesystem>
#include <utility>

#include "config/yaml_io.h"
#include "core/log.h"
#include "kernels/ops.h"
#include "trainer/log_text.h"
#include "trainer/make_model.h"
#include "trainer/output_paths.h"
#include "trainer/stop_signal.h"
#include "trainer/training_loop.h"
#include "upcycling/upcycle.h"

namespace moe {
namespace {

std::unique_ptr<TokenLoader> open_training_data(const Config& config,
                                                const ParallelGroups& groups) {
  std::unique_ptr<TokenLoader> loader =
      make_token_loader(config.data, group_rank(groups.dp), group_size(groups.dp));
  MOE_CHECK(loader->tokenizer().vocab_size() <= config.model.vocab_size,
            "model.vocab_size = ", config.model.vocab_size, " is smaller than the tokenizer's ",
            loader->tokenizer().vocab_size(), " tokens (data.tokenizer = ", config.data.tokenizer,
            ")");
  return loader;
}

// The model with its parameters allocated, their values drawn from train.seed.
std::unique_ptr<LanguageModel> make_allocated_model(const Config& config, ParameterStore& store,
                                                    const ParallelGroups& groups,
                                                    const std::string& resume_dir) {
  std::unique_ptr<LanguageModel> model = make_model(config, store, groups, resume_dir);
  store.allocate(static_cast<uint64_t>(config.train.seed));
  return model;
}

void log_model_and_data(const TrainingRun& run) {
  const TrainConfig& train = run.config.train;
  const ParameterCounts counts = run.model->parameter_counts();
  const int64_t seq_len = run.config.data.seq_len;
  MOE_LOG_INFO("model: ", counts.total, " parameters (", counts.embedding, " in the embedding",
               counts.trainable < counts.total
                   ? ", " + std::to_string(counts.trainable) + " trainable"
                   : std::string(),
               "), ", counts.active_per_token, " active per token; ",
               number_text("%.3g", run.model->flops_per_token(seq_len)),
               " training FLOPs per token at seq_len ", seq_len);
  MOE_LOG_INFO("data: ", run.config.data.train, "; ", train.steps, " steps of ",
               run.tokens_per_step, " tokens (", train.micro_batch_size, " x ", seq_len, " x ",
               train.grad_accum, " micro-batches x ", group_size(run.groups.dp),
               " data-parallel ranks)");
}

// init.method other than scratch, on a fresh run: rank 0 upcycles init.from into step 0 of
// checkpoint.dir, which every rank then loads like any checkpoint. Returns that directory.
std::string upcycle_into(const Config& config, const ParallelGroups& groups) {
  MOE_CHECK(!config.checkpoint.dir.empty(), "init.method = ", config.init.method,
            " writes the upcycled model as step 0 of checkpoint.dir; set checkpoint.dir");
  UpcycleOptions options;
  options.method = word_of(config.init.method);
  options.ratio = config.init.drop_ratio;
  options.noise_std = config.init.noise_std;
  options.seed = static_cast<uint64_t>(config.init.seed);
  std::string dir = (std::filesystem::path(config.checkpoint.dir) / step_dir_name(0)).string();
  if (group_rank(groups.world) == 0) {
    dir = upcycle({config.init.from}, config, options, config.checkpoint.dir);
    MOE_LOG_INFO("upcycled ", config.init.from, " (", config.init.method, ") into ", dir);
  }
  if (group_size(groups.world) > 1) groups.world->barrier();
  return dir;
}

// What a resume with other seeds or another seq_len than the checkpoint's saved config changes. The
// data position is kept in samples (as across layouts), so another seq_len moves it in tokens.
void warn_of_changes(const Config& config, const CheckpointMeta& meta) {
  if (meta.seed != config.train.seed)
    MOE_LOG_WARN("train.seed = ", config.train.seed, " differs from the checkpoint's ", meta.seed,
                 ": it seeds the parameter init, which a resume does not redo, so training goes "
                 "on the same (only the text of --sample differs)");
  if (meta.config_yaml.empty() || meta.consumed_samples == 0) return;
  DataConfig saved;
  try {
    saved = parse_config(meta.config_yaml, "the checkpoint's config").data;
  } catch (const InputError&) {
    return;  // a saved config this version no longer validates: a warning must not stop the resume
  }
  const DataConfig& data = config.data;
  if (saved.seed != data.seed)
    MOE_LOG_WARN("data.seed = ", data.seed, " differs from the checkpoint's ", saved.seed,
                 ": the data order from here on differs from the saved run's (sample ",
                 meta.consumed_samples,
                 " on of the new shuffle: within this epoch some samples already trained on "
                 "come again and others are skipped)");
  if (saved.seq_len != data.seq_len)
    MOE_LOG_WARN("data.seq_len = ", data.seq_len, " differs from the checkpoint's ", saved.seq_len,
                 ": the data position is kept in samples, so training goes on at sample ",
                 meta.consumed_samples, " of the ", data.seq_len, "-token samples (",
                 meta.consumed_samples * data.seq_len, " tokens into them; the saved run had read ",
                 meta.consumed_samples * saved.seq_len,
                 "), which cut the data into other windows: some tokens come again, some are "
                 "skipped");
}

// Loads the checkpoint `dir` into the state (with newest_loadable, the newest one of
// checkpoint.dir that loads, and sets `dir` to it) and logs what it held; returns its step.
int64_t resume_logged(TrainerState& state, std::string& dir, bool newest_loadable) {
  const TrainConfig& train = state.config.train;
  const auto load_start = Clock::now();
  CheckpointMeta meta;
  if (newest_loadable) {
    ResumePoint newest = resume_from_newest_loadable(state, state.config.checkpoint.dir);
    dir = std::move(newest.dir);
    meta = newest.meta;
  } else {
    meta = resume_from(state, dir);
  }
  MOE_LOG_INFO("resumed from ", dir, " at step ", meta.step, " (", meta.consumed_tokens,
               " tokens consumed; saved under tp ", meta.tp, " dp ", meta.dp, " ep ", meta.ep,
               meta.expert_tp ? " expert_tp" : "", meta.zero ? " zero1" : "", ") in ",
               number_text("%.2f", seconds_since(load_start)), " s");
  if (!meta.has_optimizer_state)
    MOE_LOG_WARN(
        dir, " holds weights only (a converted or upcycled model): AdamW starts from zero moments");
  warn_of_changes(state.config, meta);
  MOE_CHECK(meta.step <= train.steps, "the checkpoint ", dir, " is at step ", meta.step,
            ", beyond train.steps = ", train.steps, "; raise train.steps to train further");
  return meta.step;
}

}  // namespace

TrainingRun::TrainingRun(const Config& requested, const ParallelGroups& groups)
    : groups(groups),
      resume_dir(resume_directory(requested.checkpoint)),
      config(resolve_model_config(requested, resume_dir)),
      device(training_device(config.train, groups.world)),
      start(Clock::now()),
      loader(open_training_data(config, groups)),
      store(DType::f32, device),
      model(make_allocated_model(config, store, groups, resume_dir)),
      optimizer(store, config.train, groups, config.parallel.zero == 1,
                config.parallel.experts != ExpertPlacement::ep),
      stream(device),
      tokens_per_step(int64_t{config.train.micro_batch_size} * config.train.grad_accum *
                      config.data.seq_len * group_size(groups.dp)),
      has_moe(config.model.kind == ModelKind::decoder &&
              config.moe.first_k_dense < config.model.n_layers),
      state{config, store, optimizer, *loader, groups, model->checkpoint_attachments()},
      writer(state) {
  check_output_paths(config, groups.world);
  // TF32 for f32 runs only: in bf16 the f32 GEMMs left are the router's, which stays full f32.
  ops::set_matmul_tf32(config.train.tf32 && config.train.precision == Precision::f32);
  MOE_LOG_INFO("training on ", device.str(), " in ", config.train.precision,
               config.train.precision == Precision::bf16
                   ? " (bf16 activations and weight copies; f32 master weights, gradients and "
                     "AdamW moments)"
                   : "");
  log_model_and_data(*this);
  if (!config.checkpoint.dir.empty() && group_rank(groups.world) == 0)
    clean_checkpoints(config.checkpoint.dir, 0);  // interrupted saves
  if (group_size(groups.world) > 1) groups.world->barrier();
  const bool newest_loadable = !resume_dir.empty() && config.checkpoint.resume == "auto";
  if (resume_dir.empty() && config.init.method == InitMethod::load) {
    load_weights(state, config.init.from);
    MOE_LOG_INFO("loaded the weights of ", config.init.from, " (init.method: load)");
  } else if (resume_dir.empty() && config.init.method != InitMethod::scratch) {
    resume_dir = upcycle_into(config, groups);
  }
  if (!resume_dir.empty()) first_step = resume_logged(state, resume_dir, newest_loadable);
  install_stop_handlers();
  if (has_moe)
    MOE_LOG_INFO(
        "expert load per MoE layer, in each line: max/mean, coefficient of variation, "
        "idle experts");
  // One writer per job; the config itself stays the same on every rank (checkpoints store it).
  metrics = MetricsWriter(group_rank(groups.world) == 0 ? config.log.metrics_file : "",
                          resume_dir.empty() ? std::nullopt : std::optional<int64_t>(first_step));
  train_start = Clock::now();
}

}  // namespace moe
