// moe-train: train a model described by one YAML config (DESIGN.md §1).
//   moe-train --config configs/quickstart.yaml [--set train.steps=100 ...] [--sample 300]
//   moe-train --config X.yaml --plan [--world N] [--device-memory 80GiB]
// Runs with or without mpirun; under mpirun the ranks train in the layout of parallel.* (data,
// tensor and expert parallel; docs/parallelism.md). Every error reaches the user as one "error:
// ..." line (prefixed by the rank under mpirun) and a non-zero exit; with several ranks the job is
// aborted so no rank is left waiting.
// --plan prints the memory each rank will need (trainer/memory_plan.h) and trains nothing; it
// needs neither data nor an MPI job (--world says how many ranks, default the job's).
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <optional>

#include "config/run_config.h"
#include "config/yaml_io.h"
#include "core/log.h"
#include "parallel/mpi_communicator.h"
#include "parallel/process_grid.h"
#include "trainer/memory_plan.h"
#include "trainer/training_loop.h"
#include "upcycling/bts_model.h"

int main(int argc, char** argv) {
  CLI::App app{"Train a Mixture-of-Experts language model from a YAML config."};
  std::string config_path;
  std::vector<std::string> overrides;
  bool print_config = false;
  moe::TrainingOptions options;
  app.add_option("--config", config_path, "run config (YAML)")->required();
  app.add_option("--set", overrides, "override a key, e.g. --set train.steps=100 (repeatable)");
  app.add_flag("--print-config", print_config, "print the effective config and exit");
  app.add_option("--sample", options.sample_tokens, "generate this many tokens after training")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--prompt", options.sample_prompt, "prompt of the sample");
  app.add_flag("--profile", options.profile, "print the time spent in each op after training");
  bool plan = false;
  int plan_world = 0;
  std::string device_memory;
  CLI::Option* plan_flag =
      app.add_flag("--plan", plan, "print the memory per rank of the config's layout and exit");
  app.add_option("--world", plan_world, "--plan: ranks of the layout (default: the job's)")
      ->check(CLI::PositiveNumber)
      ->needs(plan_flag);
  app.add_option("--device-memory", device_memory,
                 "--plan: warn when a rank needs more, e.g. 80GiB, 80GB, 1.5TiB or bytes")
      ->needs(plan_flag);
  CLI11_PARSE(app, argc, argv);

  int thread_level = 0;  // checkpoint.async writes from a background thread
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &thread_level);
  int rank = 0, world = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  moe::set_log_rank(rank, world);
  int status = 0;
  try {
    moe::Config config = moe::load_config(config_path, overrides);
    moe::set_log_level(config.log.level);
    if (print_config) {
      if (rank == 0) std::fputs(moe::to_yaml(config).c_str(), stdout);
    } else if (plan) {
      moe::set_log_level(moe::LogLevel::warning);  // the report says it all (no FSSDP info lines)
      std::optional<int64_t> memory;
      if (!device_memory.empty()) memory = moe::parse_byte_size(device_memory, "--device-memory");
      const moe::MemoryPlan layout = moe::plan_memory(config, plan_world > 0 ? plan_world : world);
      if (rank == 0) std::fputs(moe::plan_report(layout, config, memory).c_str(), stdout);
    } else {
      std::unique_ptr<moe::Communicator> world_comm = moe::mpi_world_communicator();
      if (config.train.device ==
          moe::DeviceType::cuda)  // NCCL between the ranks' GPUs, MPI for host exchanges
        world_comm =
            moe::nccl_world_communicator(moe::training_device(config.train, world_comm.get()));
      const bool bts = config.model.kind == moe::ModelKind::bts;
      // BTS: the ranks of a replica share the decoders in the place of a TP group.
      moe::ProcessGrid grid(
          *world_comm, bts ? moe::bts_model_group_size(world, config.parallel) : config.parallel.tp,
          config.parallel.dp, config.parallel.expert_ranks(world));
      if (config.parallel.experts == moe::ExpertPlacement::fssdp &&
          config.fssdp.ranks_per_node == 0) {
        const int per_node = moe::ranks_per_node(grid.ep_group());
        config.fssdp.ranks_per_node = per_node > 0 ? per_node : grid.ep_size();
        MOE_LOG_INFO("FSSDP: fssdp.ranks_per_node = ", config.fssdp.ranks_per_node,
                     per_node > 0 ? " (detected)"
                                  : " (the EP group's ranks are not placed node by node, so all "
                                    "count as one node)");
      }
      MOE_LOG_INFO("effective config:\n", moe::to_yaml(config));
      if (bts)
        MOE_LOG_INFO("process grid: ", grid.world_size(), " ranks = ", grid.dp_size(),
                     " replicas (data parallel) x ", grid.tp_size(),
                     " ranks sharing the BTS decoders");
      else
        MOE_LOG_INFO("process grid: ", grid.world_size(), " ranks = tp ", grid.tp_size(), " x dp ",
                     grid.dp_size(), ", experts over ep ", grid.ep_size(), " x edp ",
                     grid.edp_size(), config.parallel.expert_tp ? ", experts split over tp" : "");
      moe::train_model(config, options, grid.groups(config.parallel.expert_tp));
    }
  } catch (const std::exception& e) {
    // MoEForge's exceptions already name the rank; the log prefix would repeat it.
    std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
    if (world > 1) MPI_Abort(MPI_COMM_WORLD, status);
  }
  MPI_Finalize();
  return status;
}
