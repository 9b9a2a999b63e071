// Communication per optimizer step of every process-grid layout that fits the job, for one fixed
// model (the given config), all measured in one run: for each layout, one warm-up step, then
// --steps timed steps of train_step; the Communicators' own byte counters give the payload each
// rank hands to each kind of collective per step (see communicator.h), reported for rank 0 and as
// the maximum over ranks, with the step time.
//   mpirun -np 4 build/bench/bench_layout_comm --config configs/quickstart.yaml [--steps 3]
//     [--set model.vocab_size=258 ...]
// Layouts need tp to divide the vocabulary and heads, ep the experts: pass --set to make them fit;
// layouts the model does not fit are listed as skipped.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "config/yaml_io.h"
#include "parallel/process_grid.h"
#include "trainer/make_model.h"
#include "trainer/train_step.h"

namespace {

using namespace moe;

struct Layout {
  int tp, dp, ep;
  bool expert_tp, zero;
};

std::vector<Layout> layouts_for(int world) {
  std::vector<Layout> layouts;
  for (int tp = 1; tp <= world; tp *= 2) {
    if (world % tp != 0) continue;
    const int dp = world / tp;
    for (int ep = 1; ep <= dp; ep *= 2)
      for (bool zero : {false, true}) {
        layouts.push_back({tp, dp, ep, false, zero});
        if (tp > 1 && ep > 1) layouts.push_back({tp, dp, ep, true, zero});
      }
  }
  return layouts;
}

double max_over(Communicator& world, double value) {
  Tensor t = Tensor::from_vector<double>({1}, {value});
  Stream stream;
  world.all_reduce(t, ReduceOp::max, stream);
  return t.data<double>()[0];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Communication bytes per optimizer step of each layout."};
  std::string config_path;
  std::vector<std::string> overrides;
  int steps = 3;
  app.add_option("--config", config_path, "run config (YAML)")->required();
  app.add_option("--set", overrides, "override a key (repeatable)");
  app.add_option("--steps", steps, "timed steps per layout")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  MPI_Init(&argc, &argv);
  int status = 0;
  try {
    std::unique_ptr<Communicator> world = mpi_world_communicator();
    const Config base = load_config(config_path, overrides);
    if (world->rank() == 0)
      std::printf(
          "# %d ranks; MB per rank per step (rank 0), max over ranks, step time\n%-28s %9s %9s %9s "
          "%9s %9s %9s %9s\n",
          world->size(), "layout", "all_red", "red_scat", "all_gath", "all2all", "total", "max",
          "step ms");
    for (const Layout& l : layouts_for(world->size())) {
      Config config = base;
      config.parallel.tp = l.tp;
      config.parallel.dp = l.dp;
      config.parallel.ep = l.ep;
      config.parallel.expert_tp = l.expert_tp;
      config.parallel.zero = l.zero ? 1 : 0;
      try {
        config.validate("layout");
      } catch (const InputError& e) {  // the model does not split this way
        if (world->rank() == 0) std::printf("# skipped: %s\n", e.what());
        continue;
      }
      ProcessGrid grid(*world, l.tp, l.dp, l.ep);
      const ParallelGroups groups = grid.groups(l.expert_tp);
      std::unique_ptr<TokenLoader> loader =
          make_token_loader(config.data, grid.dp_rank(), grid.dp_size());
      ParameterStore store(DType::f32);
      Model model(config.model, config.moe, store, groups, model_options(config, groups));
      store.allocate(static_cast<uint64_t>(config.train.seed));
      AdamW optimizer(store, config.train, groups, l.zero);
      Stream stream;
      train_step(model, optimizer, store, *loader, config.train, groups, config.train.lr, 0,
                 stream);
      reset_volume(groups);
      world->barrier();
      const auto start = std::chrono::steady_clock::now();
      for (int step = 1; step <= steps; ++step)
        train_step(model, optimizer, store, *loader, config.train, groups, config.train.lr, step,
                   stream);
      world->barrier();
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count() /
          steps;
      const CommVolume v = total_volume(groups);
      auto mb = [&](int64_t bytes) { return static_cast<double>(bytes) / steps / 1e6; };
      const double max_total = max_over(*world, mb(v.total()));
      const std::string name = "tp" + std::to_string(l.tp) + " dp" + std::to_string(l.dp) + " ep" +
                               std::to_string(l.ep) + (l.expert_tp ? " expert_tp" : "") +
                               (l.zero ? " zero1" : "");
      if (world->rank() == 0)
        std::printf("%-28s %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9.1f\n", name.c_str(),
                    mb(v[Collective::all_reduce]), mb(v[Collective::reduce_scatter]),
                    mb(v[Collective::all_gather]), mb(v[Collective::all_to_all]), mb(v.total()),
                    max_total, ms);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
    MPI_Abort(MPI_COMM_WORLD, status);
  }
  MPI_Finalize();
  return status;
}
