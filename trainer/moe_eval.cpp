// moe-eval: the validation loss of a checkpoint, the way users and tests compare models.
//   moe-eval --checkpoint runs/x/step_00001000 [--data PREFIX ...] [--set key=value ...] [--json]
//            [--expert-loads FILE]
// Decisions:
// - The model, tokenizer and data come from the config saved in the checkpoint; --set overrides
//   keys of it and --data replaces its validation sets (data.valid). Only validation data is
//   opened: with data.valid set, the training sets need not exist (an imported model has none).
// - The layout is the one moe-eval is launched with, not the one that saved the checkpoint: the
//   saved parallel.* keys are reset (tp 1, ep 1, experts ep, dp = all ranks) unless --set gives
//   them, and the checkpoint is resharded on load. The optimizer state is not read.
// - It scores the sequences the trainer does (evaluation.h): train.eval_batches global batches of
//   each set, the global batch being the saved run's (micro_batch_size x grad_accum x the dp it
//   was saved under), shared out over moe-eval's data-parallel ranks, so any layout gives the same
//   loss. World rank 0 prints one line per set and the mean, or one JSON object with --json.
// - --expert-loads FILE: rank 0 also writes, per set and MoE layer, the top-k assignments to each
//   expert over exactly the scored tokens (padding rows excluded), summed over the ranks, so any
//   layout writes the same counts (evaluation.h). The file is opened before the model is loaded,
//   so a bad path fails at once.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>

#include "checkpoint/checkpoint.h"
#include "config/run_config.h"
#include "config/yaml_io.h"
#include "core/log.h"
#include "formats/json.h"
#include "parallel/process_grid.h"
#include "trainer/evaluation.h"
#include "trainer/make_model.h"
#include "upcycling/bts_model.h"

namespace {

using namespace moe;

std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.6f", x);
  return text;
}

std::string json_string(const std::string& s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

// {"checkpoint": ..., "step": ..., "top_k": k, "sets": [{"name": prefix, "tokens": scored targets,
//   "layers": [{"layer": block index, "counts": [per expert]}, ...]}, ...]}
std::string expert_loads_json(const std::string& dir, int64_t step, int top_k,
                              const TokenLoader& loader, const ValidationLosses& losses) {
  std::string sets;
  for (int set = 0; set < loader.num_val_sets(); ++set) {
    std::string layers;
    const ExpertLoads& loads = losses.loads[set];
    for (size_t layer = 0; layer < loads.size(); ++layer) {
      if (loads[layer].empty()) continue;
      std::string counts;
      for (int64_t c : loads[layer]) counts += (counts.empty() ? "" : ", ") + std::to_string(c);
      layers += std::string(layers.empty() ? "" : ", ") + "{\"layer\": " + std::to_string(layer) +
                ", \"counts\": [" + counts + "]}";
    }
    sets += std::string(sets.empty() ? "" : ",\n  ") +
            "{\"name\": " + json_string(loader.val_set_name(set)) +
            ", \"tokens\": " + std::to_string(losses.tokens[set]) + ", \"layers\": [" + layers +
            "]}";
  }
  return "{\"checkpoint\": " + json_string(dir) + ", \"step\": " + std::to_string(step) +
         ", \"top_k\": " + std::to_string(top_k) + ",\n \"sets\": [" + sets + "]}\n";
}

// The saved config with the layout reset to "all ranks data parallel", then the user's overrides.
Config eval_config(const std::string& saved_yaml, const std::string& dir,
                   const std::vector<std::string>& data, std::vector<std::string> overrides) {
  std::vector<std::string> all = {"parallel.tp=1",   "parallel.dp=0",
                                  "parallel.ep=1",   "parallel.expert_tp=false",
                                  "parallel.zero=0", "parallel.experts=ep"};
  if (!data.empty()) {
    std::string valid;
    for (const std::string& prefix : data) valid += (valid.empty() ? "" : ", ") + prefix;
    all.push_back("data.valid=" + valid);
  }
  all.insert(all.end(), overrides.begin(), overrides.end());
  return parse_config(saved_yaml, "the config saved in " + dir, all);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Validation loss of a MoEForge checkpoint, in any layout."};
  std::string dir;
  std::vector<std::string> data, overrides;
  std::string loads_path;
  bool json = false;
  app.add_option("--checkpoint", dir, "a step directory (step_XXXXXXXX)")->required();
  app.add_option("--data", data, "validation dataset prefix (repeatable; default: the config's)");
  app.add_option("--set", overrides, "override a key of the saved config (repeatable)");
  app.add_flag("--json", json, "print one JSON object instead of text");
  app.add_option("--expert-loads", loads_path,
                 "write each set's top-k assignments per expert and MoE layer to this JSON file");
  CLI11_PARSE(app, argc, argv);

  MPI_Init(&argc, &argv);
  int rank = 0, world_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  set_log_rank(rank, world_size);
  if (json) log_info_to_stderr();  // stdout is the JSON object alone
  int status = 0;
  try {
    std::unique_ptr<Communicator> world = mpi_world_communicator();
    std::ofstream loads_file;
    if (!loads_path.empty() && rank == 0) {
      loads_file.open(loads_path);
      MOE_CHECK(loads_file, "cannot write --expert-loads file '", loads_path,
                "': ", std::strerror(errno));
    }
    MOE_CHECK(is_committed(dir), "'", dir,
              "' is not a committed checkpoint (a step directory with a COMMIT marker)");
    const Config config =
        resolve_model_config(eval_config(checkpoint_config(dir), dir, data, overrides), dir);
    const bool bts = config.model.kind == ModelKind::bts;
    ProcessGrid grid(*world,
                     bts ? bts_model_group_size(world_size, config.parallel) : config.parallel.tp,
                     config.parallel.dp, config.parallel.expert_ranks(world_size));
    const ParallelGroups groups = grid.groups(config.parallel.expert_tp);
    std::unique_ptr<TokenLoader> loader =
        make_token_loader(config.data, grid.dp_rank(), grid.dp_size(), LoaderUse::evaluation);
    MOE_CHECK(loader->num_val_sets() > 0, "no validation data: pass --data PREFIX");
    ParameterStore store(DType::f32);
    const std::unique_ptr<LanguageModel> model = make_model(config, store, groups, dir);
    store.allocate(static_cast<uint64_t>(config.train.seed));
    // BTS: --set 'bts.drop=[NAME]' evaluates without that expert.
    const CheckpointMeta meta =
        load_checkpoint(dir, {&store, false, {}}, groups, bts_checkpoint_changes(dir, config));
    Stream stream;
    std::string text, fields;
    const EvalPlan plan{validation_sequences(config.train, meta.dp), config.train.micro_batch_size,
                        groups.dp, !loads_path.empty()};
    const ValidationLosses losses = evaluate_all(*model, *loader, plan, stream);
    for (int set = 0; set < loader->num_val_sets(); ++set) {
      const double loss = losses.per_set[set];
      const std::string name = loader->val_set_name(set);
      text += name + " " + json_number(loss) + "\n";
      fields += (fields.empty() ? "" : ", ") + json_string(name) + ": " + json_number(loss);
    }
    const double mean = losses.mean;
    if (loads_file.is_open()) {
      loads_file << expert_loads_json(dir, meta.step, config.moe.top_k, *loader, losses);
      MOE_CHECK(loads_file.flush(), "cannot write --expert-loads file '", loads_path, "'");
    }
    if (rank == 0) {
      if (json)
        std::printf("{\"checkpoint\": %s, \"step\": %lld, \"val_loss\": {%s}, \"mean\": %s}\n",
                    json_string(dir).c_str(), static_cast<long long>(meta.step), fields.c_str(),
                    json_number(mean).c_str());
      else
        std::printf("%s at step %lld\n%smean %s\n", dir.c_str(), static_cast<long long>(meta.step),
                    text.c_str(), json_number(mean).c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
    if (world_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
  }
  MPI_Finalize();
  return status;
}
