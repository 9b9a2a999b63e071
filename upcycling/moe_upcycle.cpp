// moe-upcycle: a dense checkpoint -> the step-0 checkpoint of an MoE model (upcycle.h).
//   moe-upcycle --dense DIR/step_X [--dense ...] --config moe.yaml
//               --method copy|granular|drop|noise|btx --output DIR
//               [--ratio 0.5] [--index-mode shared|per_matrix] [--statistics matrix|slice]
//               [--noise-std 0.01] [--router-std 0.02] [--seed 0] [--shared-from-dense]
// Errors are one "error: ..." line and exit status 1; nothing is published then.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "config/yaml_io.h"
#include "upcycling/upcycle.h"

int main(int argc, char** argv) {
  CLI::App app{"Turn a dense MoEForge checkpoint into the initial state of an MoE model."};
  std::vector<std::string> dense;
  std::string config_path, output;
  std::vector<std::string> overrides;
  moe::UpcycleOptions options;
  app.add_option("--dense", dense, "committed dense step directory (repeat for btx)")->required();
  app.add_option("--config", config_path, "the MoE model's config (YAML)")->required();
  app.add_option("--set", overrides, "override a key of the MoE config (repeatable)");
  app.add_option("--output", output, "checkpoint root to write step_00000000 into")->required();
  app.add_option("--method", options.method, "copy, granular, drop, noise or btx")
      ->check(CLI::IsMember({"copy", "granular", "drop", "noise", "btx"}));
  app.add_option("--ratio", options.ratio, "drop, noise: share of each expert's neurons");
  app.add_option("--index-mode", options.index_mode, "shared or per_matrix");
  app.add_option("--statistics", options.statistics, "drop: matrix or slice");
  app.add_option("--noise-std", options.noise_std, "noise: std of the added noise");
  app.add_option("--router-std", options.router_std, "std of the new router weights");
  app.add_option("--seed", options.seed, "seed of every random draw");
  app.add_flag("--shared-from-dense", options.shared_from_dense,
               "shared experts start as the dense FFN");
  CLI11_PARSE(app, argc, argv);
  MPI_Init(&argc, &argv);  // parallel HDF5 is linked; one process
  int status = 0;
  try {
    const moe::Config config = moe::load_config(config_path, overrides);
    const std::string dir = moe::upcycle(dense, config, options, output);
    std::printf("moe-upcycle: %s%s (%s) -> %s\n", dense.front().c_str(),
                dense.size() > 1 ? " and more" : "", options.method.c_str(), dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
  }
  MPI_Finalize();
  return status;
}
