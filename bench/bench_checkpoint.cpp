// Checkpoint save and load times on one process, through the API the trainer uses
// (save_checkpoint, load_checkpoint with the AdamW moments), and the time of the checksums alone
// (block_checksum over every parameter and moment), for the model of the given config. Load
// reads every tensor back and verifies its checksum; the file is fresh in the page cache then.
// Each is reported as wall-clock and process CPU time (the CPU time is steadier on a shared
// machine). The newest checkpoint stays under --dir, for timing `moe-ckpt verify` on it.
//   build/bench/bench_checkpoint --config configs/gpu/dense-125m.yaml --set train.device=cpu
//     --dir /tmp/bench_ckpt [--repeats 3]
#include <mpi.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "checkpoint/checkpoint.h"
#include "config/yaml_io.h"
#include "layers/model.h"
#include "trainer/optimizer.h"

namespace {

using namespace moe;

struct Seconds {
  double wall, cpu;
};

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

Seconds seconds(const std::function<void()>& work) {
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = cpu_seconds();
  work();
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
          cpu_seconds() - cpu_start};
}

// What save_checkpoint checksums: every parameter's value and both its moments.
uint64_t checksum_all(const ParameterStore& store, const std::vector<MomentRun>& runs) {
  uint64_t sum = 0;
  for (const Parameter& p : store.parameters())
    sum += block_checksum(p.value, p.global_shape, p.offset);
  for (const MomentRun& run : runs) {
    const Parameter& p = *run.parameter;
    for (const Tensor* moment : {&run.exp_avg, &run.exp_avg_sq})
      sum += block_checksum(moment->view(p.shape), p.global_shape, p.offset);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time MoEForge checkpoint save, load and checksums."};
  std::string config_path, dir;
  std::vector<std::string> overrides;
  int repeats = 3;
  app.add_option("--config", config_path, "run config (YAML): the model")->required();
  app.add_option("--set", overrides, "override a key (repeatable)");
  app.add_option("--dir", dir, "checkpoint root (the newest checkpoint stays)")->required();
  app.add_option("--repeats", repeats, "times each is measured")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  MPI_Init(&argc, &argv);  // parallel HDF5 is linked; one process
  int rc = 0;
  try {
    const Config config = load_config(config_path, overrides);
    ParameterStore store(DType::f32);
    Model model(config.model, config.moe, store);
    store.allocate(static_cast<uint64_t>(config.train.seed), false);
    AdamW optimizer(store, config.train);
    const std::vector<MomentRun> runs = optimizer.moment_runs();
    const RankState state{&store, true, runs};
    std::printf("model: %lld parameters (f32), checkpoint %.1f MB with the moments\n",
                static_cast<long long>(store.numel()), 3.0 * store.numel() * 4 / 1e6);
    std::vector<Seconds> save, load, checksum;
    std::string step_dir;
    uint64_t sum = 0;
    for (int r = 0; r < repeats; ++r) {
      CheckpointMeta meta;
      meta.step = r + 1;
      save.push_back(seconds([&] { step_dir = save_checkpoint(dir, state, meta, {}); }));
      clean_checkpoints(dir, 1);
      load.push_back(seconds([&] { load_checkpoint(step_dir, state, {}); }));
      checksum.push_back(seconds([&] { sum = checksum_all(store, runs); }));
    }
    auto report = [](const char* what, const std::vector<Seconds>& times) {
      std::vector<double> wall, cpu;
      for (const Seconds& t : times) wall.push_back(t.wall), cpu.push_back(t.cpu);
      std::sort(wall.begin(), wall.end());
      std::sort(cpu.begin(), cpu.end());
      std::printf("%-28s wall min %7.3f s median %7.3f s | cpu min %7.3f s median %7.3f s\n", what,
                  wall.front(), wall[wall.size() / 2], cpu.front(), cpu[cpu.size() / 2]);
    };
    report("save_checkpoint", save);
    report("load_checkpoint (verifies)", load);
    report("checksums alone", checksum);
    std::printf("checksum total %016llx; kept %s\n", static_cast<unsigned long long>(sum),
                step_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
