#include "trainer/training_loop.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <limits>
#include <vector>

#include "core/log.h"
#include "kernels/op_profile.h"
#include "kernels/ops.h"
#include "parallel/mpi_communicator.h"
#include "trainer/evaluation.h"
#include "trainer/log_text.h"
#include "trainer/lr_schedule.h"
#include "trainer/sampling.h"
#include "trainer/step_report.h"
#include "trainer/stop_signal.h"
#include "trainer/train_step.h"
#include "trainer/training_run.h"
#include "trainer/watchdog.h"

namespace moe {
namespace {

// ", device peak 1234 MB in use, 1500 MB reserved" for a GPU run; empty on the CPU.
std::string device_memory_text(Device device) {
  if (device.is_cpu()) return "";
  const MemoryStats s = ops::device_memory_stats(device);
  return ", " + device.str() + " peak " + std::to_string(s.peak_in_use >> 20) + " MB in use, " +
         std::to_string(s.peak_reserved >> 20) + " MB reserved";
}

int64_t peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

// Test hooks: <NAME>_RANK=r <NAME>_STEP=s pick rank r (the rank in error messages, -1 alone) at
// step s (as numbered in the log).
bool injected(const char* rank_variable, const char* step_variable, int64_t step) {
  const char* rank = std::getenv(rank_variable);
  const char* at = std::getenv(step_variable);
  return rank && at && std::atoi(rank) == error_rank() && std::atoll(at) == step + 1;
}

// MOE_FAIL_RANK, MOE_FAIL_STEP: the rank throws, so that tests can check that one failing rank
// ends the whole job at once. MOE_STALL_RANK, MOE_STALL_STEP: the rank stops itself (SIGSTOP, its
// watchdog thread with it), so that tests can check that the other ranks' watchdogs end the job.
void inject_faults(int64_t step) {
  if (injected("MOE_FAIL_RANK", "MOE_FAIL_STEP", step))
    MOE_THROW(InternalError, "failure injected at step ", step + 1,
              " (MOE_FAIL_RANK, MOE_FAIL_STEP)");
  if (injected("MOE_STALL_RANK", "MOE_STALL_STEP", step)) std::raise(SIGSTOP);
}

[[noreturn]] void abort_on_timeout(const std::string& message) {
  MOE_LOG_ERROR(message);
  abort_job(1);
}

// Warns about a skipped step and ends the run after more than train.max_nonfinite_steps in a
// row. Returns how many steps in a row are skipped now.
int count_skipped(const StepStats& stats, int64_t step, const TrainConfig& train,
                  int skipped_before) {
  if (!stats.skipped) return 0;
  const int skipped_in_a_row = skipped_before + 1;
  MOE_LOG_WARN("step ", step + 1, ": loss ", number_text("%.4g", stats.lm_loss), ", gradient norm ",
               number_text("%.4g", stats.grad_norm), ": not finite, update skipped (",
               skipped_in_a_row, " in a row)");
  MOE_CHECK(skipped_in_a_row <= train.max_nonfinite_steps, "the loss or gradient norm was not ",
            "finite in ", skipped_in_a_row, " steps in a row (up to step ", step + 1,
            "; train.max_nonfinite_steps = ", train.max_nonfinite_steps,
            "); lower train.lr or check the data");
  return skipped_in_a_row;
}

// The steps since the last log line. Evaluation and saving are left out of its time, which is
// training throughput, and out of its traffic, which is per-step communication.
struct LogInterval {
  StepStats stats;
  Clock::time_point start = Clock::now();

  void leave_out(Clock::time_point since, const ParallelGroups& groups) {
    start += Clock::now() - since;
    reset_volume(groups);
  }
};

// How evenly the EP group's ranks shared the expert work over the interval: per MoE layer, max /
// mean over the ranks of the token rows their experts processed (what FSSDP evens out). Collective
// over the EP group.
std::vector<double> expert_work(const StepStats& interval, Communicator& ep) {
  std::vector<double> rows;
  for (size_t i = 0; i < interval.loads.size(); ++i)
    if (!interval.loads[i].empty()) rows.push_back(static_cast<double>(interval.expert_rows[i]));
  if (rows.empty()) return {};
  const auto layers = static_cast<int64_t>(rows.size());
  Tensor all = Tensor::empty({layers * ep.size()}, DType::f64);
  Stream stream;
  ep.host().all_gather(Tensor::from_vector<double>({layers}, rows), all, stream);
  std::vector<double> ratios;
  for (int64_t moe_layer = 0; moe_layer < layers; ++moe_layer) {
    double most = 0, sum = 0;
    for (int r = 0; r < ep.size(); ++r) {
      const double v = all.data<double>()[r * layers + moe_layer];
      most = std::max(most, v);
      sum += v;
    }
    ratios.push_back(sum > 0 ? most * ep.size() / sum : 1.0);
  }
  return ratios;
}

// Every log.interval steps, after the last and on a stop: the interval's log line and metrics
// record. Collective over the world (communication volume) and the EP group (expert work).
void maybe_report(TrainingRun& run, int64_t step, double lr, bool run_ends, LogInterval& interval,
                  TrainingSummary& summary) {
  const TrainConfig& train = run.config.train;
  if ((step + 1) % run.config.log.interval != 0 && !run_ends) return;
  watchdog_phase("logging");
  // The interval's device work is done before the clock is read.
  ops::synchronize(run.stream.get());
  StepFigures figures;
  figures.step = step + 1;
  figures.total_steps = train.steps;
  figures.lr = lr;
  figures.tokens_per_s = static_cast<double>(interval.stats.tokens) / seconds_since(interval.start);
  figures.elapsed_s = seconds_since(run.train_start);
  figures.eta_s =
      figures.elapsed_s / static_cast<double>(step + 1 - run.first_step) * (train.steps - step - 1);
  figures.has_moe = run.has_moe;
  figures.has_mtp = run.config.model.mtp_depth > 0;
  figures.counts_dropped = run.config.moe.capacity_factor > 0;
  if (group_size(run.groups.world) > 1) {
    figures.comm = total_volume(run.groups);
    reset_volume(run.groups);  // before the expert work's gather, which counts in the next interval
  }
  if (group_size(run.groups.ep) > 1)
    figures.expert_work = expert_work(interval.stats, *run.groups.ep);
  figures.interval = std::move(interval.stats);
  const StepReport report = step_report(figures);
  MOE_LOG_INFO(report.line);
  run.metrics.write(report.record);
  summary.train_loss = figures.interval.lm_loss / static_cast<double>(figures.interval.steps);
  summary.tokens_per_s = figures.tokens_per_s;
  interval = LogInterval{};
}

// Every train.eval_interval steps and after the last: the validation losses, logged and recorded.
void maybe_evaluate(TrainingRun& run, int64_t step, bool last, LogInterval& interval,
                    TrainingSummary& summary) {
  const TrainConfig& train = run.config.train;
  if (!(train.eval_interval > 0 && (step + 1) % train.eval_interval == 0) && !last) return;
  watchdog_phase("evaluation", true);
  TokenLoader& loader = *run.loader;
  const auto eval_start = Clock::now();
  MetricRecord record;
  record.add("step", step + 1);
  std::string line = "eval step " + std::to_string(step + 1) + " | val_loss ";
  std::string per_set;
  const EvalPlan plan{validation_sequences(train, group_size(run.groups.dp)),
                      train.micro_batch_size, run.groups.dp};
  const ValidationLosses losses = evaluate_all(*run.model, loader, plan, run.stream.get());
  for (int set = 0; set < loader.num_val_sets(); ++set) {
    record.add("val_loss." + loader.val_set_name(set), losses.per_set[set]);
    per_set += " | " + loader.val_set_name(set) + " " + number_text("%.4f", losses.per_set[set]);
  }
  summary.val_loss = losses.mean;
  record.add("val_loss", summary.val_loss);
  if (loader.num_val_sets() == 1) per_set.clear();
  MOE_LOG_INFO(line, number_text("%.4f", summary.val_loss), per_set, " (",
               number_text("%.1f", seconds_since(eval_start)), " s)");
  run.metrics.write(record);
  interval.leave_out(eval_start, run.groups);
}

// Every checkpoint.interval steps, and when the run ends (after the last step or on a stop) a final
// save that also waits for an asynchronous one to be written. keep_last is the writer's. Returns
// whether it saved.
bool maybe_save(TrainingRun& run, int64_t step, bool run_ends, LogInterval& interval) {
  const CheckpointConfig& checkpoint = run.config.checkpoint;
  if (checkpoint.dir.empty()) return false;
  if (!(checkpoint.interval > 0 && (step + 1) % checkpoint.interval == 0) && !run_ends)
    return false;
  watchdog_phase("checkpoint save", true);
  const auto save_start = Clock::now();
  const std::string dir = run.writer.save(step + 1);
  if (run_ends) run.writer.finish();
  const bool in_background = checkpoint.async && !run_ends;
  MOE_LOG_INFO(in_background ? "saving " : "saved ", dir, " (",
               number_text("%.2f", seconds_since(save_start)), " s",
               in_background ? " for the snapshot; written in the background)" : ")");
  interval.leave_out(save_start, run.groups);
  return true;
}

// A stop signal that came during a periodic save: that save is the run's last (written, once an
// asynchronous one is), and the interval since the last report is reported. Returns the signal.
int stopped_while_saving(TrainingRun& run, int64_t step, double lr, LogInterval& interval,
                         TrainingSummary& summary) {
  const int stop_signal = stop_requested(run.groups.world);
  if (!stop_signal) return 0;
  run.writer.finish();
  if (interval.stats.steps > 0) maybe_report(run, step, lr, true, interval, summary);
  return stop_signal;
}

void warn_stopped(const TrainingRun& run, int64_t steps, int stop_signal) {
  MOE_LOG_WARN("stopped after step ", steps, " on signal ", stop_signal,
               run.config.checkpoint.dir.empty() ? " (checkpoint.dir is not set: nothing was saved)"
                                                 : "; resume with checkpoint.resume: auto");
}

// The op times, and on a CUDA device how often the host waited for it (ops::HostWaits).
void log_op_profile(const TrainingRun& run, const ops::HostWaits& at_start, int64_t steps) {
  ops::set_op_profiling(false);
  MOE_LOG_INFO("time per op over the whole run (evaluation included):\n",
               format_op_profile(ops::op_profile()));
  if (run.config.train.device != DeviceType::cuda || steps <= 0) return;
  const ops::HostWaits now = ops::host_waits();
  const auto per_step = [&](int64_t count) {
    return number_text("%.1f", static_cast<double>(count) / steps);
  };
  MOE_LOG_INFO("host waits for the device per step (evaluation included): ",
               per_step(now.reads - at_start.reads), " reads, ",
               per_step(now.uploads - at_start.uploads), " uploads from pageable memory");
}

void log_done(const TrainingRun& run, const TrainingSummary& summary) {
  const int64_t steps = summary.steps - run.first_step;
  const double train_tokens = static_cast<double>(run.tokens_per_step) * steps;
  MOE_LOG_INFO(
      "done: ", steps, " steps in ", clock_text(summary.wall_s), " (",
      number_text("%.0f", train_tokens / summary.wall_s),
      " tok/s overall, evaluation included); final train loss ",
      number_text("%.4f", summary.train_loss),
      std::isnan(summary.val_loss) ? "" : ", val loss " + number_text("%.4f", summary.val_loss),
      "; peak memory ", peak_rss_mb(), " MB", device_memory_text(run.device), "; run ",
      clock_text(seconds_since(run.start)));
}

// Every rank generates: the forward is collective under TP and EP. Rank 0 logs the text.
std::string sample(TrainingRun& run, const TrainingOptions& options) {
  const Tokenizer& tokenizer = run.loader->tokenizer();
  const std::vector<int32_t> text = generate(
      *run.model, tokenizer.encode(options.sample_prompt), run.config.data.seq_len,
      {options.sample_tokens, 0.8, static_cast<uint64_t>(run.config.train.seed)}, run.stream.get());
  std::string decoded = tokenizer.decode(text);
  if (group_rank(run.groups.world) == 0) MOE_LOG_INFO("sample:\n", decoded);
  return decoded;
}

}  // namespace

Device training_device(const TrainConfig& train, Communicator* world) {
  if (train.device == DeviceType::cpu) return Device::cpu();
  ops::init_backends();
  const int gpus = ops::cuda_device_count();
  MOE_CHECK(gpus > 0, "train.device = cuda, but ",
            ops::built_with_cuda()
                ? "no CUDA device can be used on this machine (no GPU, no driver, or "
                  "CUDA_VISIBLE_DEVICES hides them); use train.device = cpu"
                : "MoEForge was built without CUDA (configure with -DMOE_WITH_CUDA=ON on a "
                  "machine with the CUDA toolkit)");
  const int local = world ? node_local_rank(world->host()) : 0;
  // Every rank learns the most ranks any node runs and the fewest GPUs any node shows, so that all
  // of them stop together when one node is short.
  Tensor need = Tensor::from_vector<int64_t>({2}, {local + 1, -int64_t{gpus}});
  Stream host;
  if (group_size(world) > 1) world->host().all_reduce(need, ReduceOp::max, host);
  const int64_t ranks_on_a_node = need.data<int64_t>()[0], fewest_gpus = -need.data<int64_t>()[1];
  MOE_CHECK(ranks_on_a_node <= fewest_gpus, "train.device = cuda: a node runs ", ranks_on_a_node,
            " ranks but a node shows only ", fewest_gpus,
            " GPUs; start at most one rank per GPU (NCCL needs a GPU of its own per rank; check "
            "CUDA_VISIBLE_DEVICES and the ranks per node)");
  return Device::cuda(local);
}

TrainingSummary train_model(const Config& requested, const TrainingOptions& options,
                            const ParallelGroups& groups) {
  TrainingRun run(requested, groups);
  const TrainConfig& train = run.config.train;
  LogInterval interval;
  TrainingSummary summary;
  summary.steps = run.first_step;
  summary.val_loss = std::numeric_limits<double>::quiet_NaN();

  ops::set_op_profiling(options.profile);
  const ops::HostWaits waits_at_start = ops::host_waits();
  int stop_signal = 0;
  int skipped_in_a_row = 0;
  {
    Watchdog watchdog(train.step_timeout_s, abort_on_timeout);
    for (int64_t step = run.first_step; step < train.steps && !stop_signal; ++step) {
      watchdog.start_step(step + 1, "step start", step == run.first_step);
      inject_faults(step);
      const double lr = learning_rate(train, step);
      const StepStats stats = train_step(*run.model, run.optimizer, run.store, *run.loader, train,
                                         groups, lr, step, run.stream.get());
      interval.stats.add(stats);
      skipped_in_a_row = count_skipped(stats, step, train, skipped_in_a_row);
      watchdog.enter("stop-signal check", false);
      stop_signal = stop_requested(groups.world);
      const bool last = step + 1 == train.steps, run_ends = last || stop_signal;
      maybe_report(run, step, lr, run_ends, interval, summary);
      maybe_evaluate(run, step, last, interval, summary);
      if (maybe_save(run, step, run_ends, interval) && !run_ends)
        stop_signal = stopped_while_saving(run, step, lr, interval, summary);
      summary.steps = step + 1;
    }
  }
  if (stop_signal) warn_stopped(run, summary.steps, stop_signal);
  if (options.profile) log_op_profile(run, waits_at_start, summary.steps - run.first_step);
  summary.wall_s = seconds_since(run.train_start);
  log_done(run, summary);
  if (options.sample_tokens > 0) summary.sample = sample(run, options);
  return summary;
}

}  // namespace moe
