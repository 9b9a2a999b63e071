// End-to-end training-step benchmark: the step moe-train runs (train_step: forward, backward,
// clipping, AdamW), timed after warmup steps, printed as one JSON line with the same keys as
// bench/reference/moe_reference.py so that bench/e2e_cpu.sh can put the two side by side.
//   build/bench/bench_train_step --config configs/quickstart.yaml --warmup 3 --steps 20 [--profile]
// The learning rate is constant (train.lr), as in the reference. --profile adds the time per op
// over the timed steps (stderr).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

#include "config/run_config.h"
#include "config/yaml_io.h"
#include "kernels/op_profile.h"
#include "trainer/metrics.h"
#include "trainer/train_step.h"

int main(int argc, char** argv) {
  CLI::App app{"Time MoEForge training steps."};
  std::string config_path;
  std::vector<std::string> overrides;
  int warmup = 3, steps = 20;
  bool profile = false;
  app.add_option("--config", config_path, "run config (YAML)")->required();
  app.add_option("--set", overrides, "override a key (repeatable)");
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--steps", steps, "timed steps")->check(CLI::PositiveNumber);
  app.add_flag("--profile", profile, "print the time per op over the timed steps to stderr");
  CLI11_PARSE(app, argc, argv);
  try {
    using namespace moe;
    const Config config = load_config(config_path, overrides);
    std::unique_ptr<TokenLoader> loader = make_token_loader(config.data);
    ParameterStore store(DType::f32);
    Model model(config.model, config.moe, store);
    store.allocate(static_cast<uint64_t>(config.train.seed));
    AdamW optimizer(store, config.train);
    Stream stream;
    std::vector<double> step_ms, losses;
    for (int step = 0; step < warmup + steps; ++step) {
      if (step == warmup) ops::set_op_profiling(profile);
      const auto start = std::chrono::steady_clock::now();
      const StepStats stats = train_step(model, optimizer, store, *loader, config.train, {},
                                         config.train.lr, step, stream);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      losses.push_back(stats.lm_loss);
      if (step >= warmup) step_ms.push_back(ms);
    }
    ops::set_op_profiling(false);
    std::vector<double> sorted = step_ms;
    std::sort(sorted.begin(), sorted.end());
    const double mean_ms = std::accumulate(step_ms.begin(), step_ms.end(), 0.0) / steps;
    const int64_t tokens =
        int64_t{config.train.micro_batch_size} * config.train.grad_accum * config.data.seq_len;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const ParameterCounts counts = model.parameter_counts();
    const char* threads = std::getenv("OMP_NUM_THREADS");
    MetricRecord record;
    record.add("impl", "moeforge")
        .add("threads", threads ? threads : "default")
        .add("batch", config.train.micro_batch_size * config.train.grad_accum)
        .add("seq_len", config.data.seq_len)
        .add("params_total", counts.total)
        .add("params_active_per_token", counts.active_per_token)
        .add("tokens_per_s", static_cast<double>(tokens) / (mean_ms / 1000.0))
        .add("step_ms_mean", mean_ms)
        .add("step_ms_median", sorted[sorted.size() / 2])
        .add("step_ms_min", sorted.front())
        .add("peak_rss_mb", static_cast<double>(usage.ru_maxrss) / 1024.0)
        .add("loss_first", losses.front())
        .add("loss_last", losses.back());
    std::printf("%s\n", to_json_line(record).c_str());
    if (profile)
      std::fprintf(stderr, "time per op over %d timed steps:\n%s", steps,
                   format_op_profile(ops::op_profile()).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
