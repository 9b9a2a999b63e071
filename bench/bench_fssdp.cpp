// Expert parallelism against FSSDP and LLEP on the same model, data and ranks (all ranks data
// parallel, the experts shared out over all of them), measured in one run. For each mode: --warmup
// optimizer steps (FSSDP plans its copies from the loads they record), then --steps measured
// ones (fssdp: copies calibrated by each forward's routing; fssdp-pred: predicted from the last
// fssdp.window steps; fssdp-rm: calibrated and re-materialized; llep: least-loaded expert
// parallelism, llep.* keys); per step:
// - the token rows each rank's experts processed (the expert work), as max / mean over ranks, per
//   MoE layer, averaged over layers and steps (1.0 = perfectly balanced);
// - the bytes each rank handed to each kind of collective (all-to-all: token dispatch; send_recv:
//   FSSDP's sparse all-gather and reduce-scatter; all-reduce: gradients and statistics), as the
//   mean and the max over ranks;
// - expert parameters held at once per rank (owned, plus copies of every MoE layer, which live
//   from forward to backward; with re-materialization, of one layer), the max over ranks, in MB
//   of fp32, and the host memory in use at its peak (parameters, gradients, moments, activations,
//   copies), the max over ranks;
// - the step time on this machine, and of it the time in the experts' GEMMs and SwiGLUs and inside
//   collectives (waiting for slower ranks included), from the op profile, mean and max over ranks.
//   mpirun -np 4 build/bench/bench_fssdp --config configs/quickstart.yaml [--steps 5] [--warmup 3]
//     [--set moe.router_skew=4 ...] [--checkpoint STEP_DIR]
// --checkpoint starts both modes from a trained model's weights (and its config, under --set), to
// measure the skew of real routing on real text.
// --tflops and --intra-gbs (this machine's sustained expert GEMM rate per rank and point-to-point
// bandwidth between two ranks) add the cost model's prediction (parallel/fssdp/cost_model.h) for
// ep and fssdp, from each measured step's loads: ms per step in the experts (the slowest rank) and
// in their traffic (all-to-all, plus copies for fssdp), summed over the MoE layers, beside the
// measurement. The model knows nothing of waiting, latency or the rest of the step.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/yaml_io.h"
#include "core/allocator.h"
#include "core/log.h"
#include "kernels/op_profile.h"
#include "parallel/fssdp/cost_model.h"
#include "parallel/fssdp/materialization.h"
#include "parallel/fssdp/resharding.h"
#include "parallel/process_grid.h"
#include "trainer/make_model.h"
#include "trainer/train_step.h"

namespace {

using namespace moe;

struct Measured {
  double balance = 0;  // max / mean of expert rows over ranks, mean over layers and steps
  double step_ms = 0;
  // ms per step: the expert GEMMs and SwiGLUs, and time inside collectives (waiting included),
  // mean and max over ranks
  double expert_ms_mean = 0, expert_ms_max = 0, collective_ms_mean = 0, collective_ms_max = 0;
  CommVolume mean, max;  // bytes per step
  double expert_mb = 0;  // max over ranks
  double peak_mb = 0;    // host memory in use at its peak during the measured steps, max over ranks
  LayerTime predicted;  // the cost model's ms per step (compute, dispatch, sparse), summed over MoE
                        // layers (ep and fssdp)
};

// The cost model's time for one MoE layer's measured loads (summed over ranks), under EP's blocks
// or (fssdp: the run's resolved placement) the FSSDP plan Algorithm 1 makes from those loads,
// routed with the run's traffic costs as the trainer routes it. A layer without tokens takes none.
LayerTime predicted_layer(const Config& config, const std::optional<FssdpPlacement>& fssdp,
                          const std::vector<int64_t>& loads, int ranks, const Cluster& cluster) {
  const int experts = config.moe.num_experts;
  const Topology topology = fssdp ? Topology{ranks, fssdp->ranks_per_node, 0,
                                             fssdp->inter_node_row_cost, fssdp->copy_rows}
                                  : Topology{ranks, ranks};
  std::vector<double> share(loads.begin(), loads.end());
  double total = 0;
  for (double l : share) total += l;
  if (total == 0) return {};
  for (double& l : share) l /= total;
  const ExpertLayerShape shape{
      int64_t{config.train.micro_batch_size} * config.data.seq_len * config.train.grad_accum,
      config.moe.top_k, config.model.d_model, config.moe.expert_hidden,
      config.train.precision == Precision::bf16 ? 2 : 4};
  const std::vector<int> owner = contiguous_owners(1, experts, topology);
  ExpertPlan plan = owners_only(owner);
  if (fssdp) {
    plan = plan_materialization(owner, share, fssdp->budget, topology);
    plan.balance = fssdp->calibrate;
  }
  return predict(layer_counts(share, plan, topology, shape), topology, shape, cluster);
}

std::vector<double> gathered(Communicator& world, double value) {
  Tensor all = Tensor::empty({world.size()}, DType::f64);
  Stream stream;
  world.all_gather(Tensor::from_vector<double>({1}, {value}), all, stream);
  return all.to_vector<double>();
}

double max_of(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
double mean_of(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

// Expert parameters this rank holds at once: its owned experts and every layer's copies.
double expert_megabytes(const Model& model, const Config& config, int ranks) {
  const double expert_bytes = 3.0 * config.moe.expert_hidden * config.model.d_model * 4;
  int moe_layers = 0;
  for (int l = 0; l < config.model.n_layers; ++l) moe_layers += config.moe.is_moe_layer(l);
  double experts = static_cast<double>(moe_layers) * config.moe.num_experts / ranks;
  if (const FssdpCoordinator* fssdp = model.fssdp()) {
    double owned = 0, copies = 0, most = 0;
    for (int l = 0; l < fssdp->layers(); ++l) {
      owned += static_cast<double>(fssdp->owned(l).size());
      const auto layer = static_cast<double>(fssdp->plan(l).replicas_on(fssdp->rank()).size());
      copies += layer;
      most = std::max(most, layer);
    }
    experts = owned + (fssdp->rematerialize() ? most : copies);
  }
  return experts * expert_bytes / 1e6;
}

Measured measure(Communicator& world, Config config, const std::string& checkpoint, int warmup,
                 int steps, const Cluster* cluster) {
  const int ranks = world.size();
  ProcessGrid grid(world, 1, ranks, ranks);
  const ParallelGroups groups = grid.groups(false);
  std::unique_ptr<TokenLoader> loader = make_token_loader(config.data, grid.dp_rank(), ranks);
  ParameterStore store(DType::f32);
  const ModelOptions options = model_options(config, groups);
  Model model(config.model, config.moe, store, groups, options);
  store.allocate(static_cast<uint64_t>(config.train.seed));
  if (!checkpoint.empty()) load_checkpoint(checkpoint, {&store, false, {}}, groups);
  AdamW optimizer(store, config.train, groups, false);
  Stream stream;
  for (int step = 0; step < warmup; ++step)
    train_step(model, optimizer, store, *loader, config.train, groups, config.train.lr, step,
               stream);
  Measured m;
  double expert_mb = 0;
  int layer_steps = 0;
  reset_volume(groups);
  double seconds = 0;
  ops::reset_op_profile();
  reset_host_bytes_peak();
  for (int step = warmup; step < warmup + steps; ++step) {
    world.barrier();
    const auto start = std::chrono::steady_clock::now();
    ops::set_op_profiling(true);
    const StepStats stats = train_step(model, optimizer, store, *loader, config.train, groups,
                                       config.train.lr, step, stream);
    ops::set_op_profiling(false);
    world.barrier();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (size_t l = 0; l < stats.expert_rows.size(); ++l) {
      if (stats.loads[l].empty()) continue;
      const std::vector<double> rows = gathered(world, static_cast<double>(stats.expert_rows[l]));
      m.balance += max_of(rows) / mean_of(rows);
      ++layer_steps;
      if (!cluster) continue;
      const LayerTime t = predicted_layer(config, options.fssdp, stats.loads[l], ranks, *cluster);
      m.predicted.compute += 1e3 * t.compute / steps;
      m.predicted.dispatch += 1e3 * t.dispatch / steps;
      m.predicted.sparse += 1e3 * t.sparse / steps;
    }
    expert_mb = std::max(expert_mb, expert_megabytes(model, config, ranks));
  }
  m.balance /= layer_steps;
  m.step_ms = 1e3 * seconds / steps;
  double expert_s = 0, collective_s = 0;
  for (const ops::OpTime& t : ops::op_profile()) {
    if (t.op == "experts_forward" || t.op == "experts_backward") expert_s += t.seconds;
    if (t.op.starts_with("comm_")) collective_s += t.seconds;
  }
  const std::vector<double> expert = gathered(world, 1e3 * expert_s / steps);
  const std::vector<double> collective = gathered(world, 1e3 * collective_s / steps);
  m.expert_ms_mean = mean_of(expert);
  m.expert_ms_max = max_of(expert);
  m.collective_ms_mean = mean_of(collective);
  m.collective_ms_max = max_of(collective);
  const CommVolume v = total_volume(groups);
  for (int kind = 0; kind < kCollectiveKinds; ++kind) {
    const std::vector<double> all = gathered(world, static_cast<double>(v.bytes[kind]) / steps);
    m.mean.bytes[kind] = static_cast<int64_t>(mean_of(all));
    m.max.bytes[kind] = static_cast<int64_t>(max_of(all));
  }
  m.expert_mb = max_of(gathered(world, expert_mb));
  m.peak_mb = max_of(gathered(world, static_cast<double>(host_bytes_peak()) / 1e6));
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Expert parallelism against FSSDP: expert work balance, bytes, memory."};
  std::string config_path, checkpoint;
  std::vector<std::string> overrides;
  int steps = 5, warmup = 3;
  double tflops = 0, intra_gbs = 0;
  app.add_option("--config", config_path, "run config (YAML)");
  app.add_option("--checkpoint", checkpoint, "start from this step directory's model and config");
  app.add_option("--set", overrides, "override a key (repeatable)");
  app.add_option("--steps", steps, "measured steps per mode")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "steps before measuring")->check(CLI::NonNegativeNumber);
  app.add_option("--tflops", tflops,
                 "sustained expert GEMM TFLOP/s per rank, for the cost model's prediction")
      ->check(CLI::PositiveNumber);
  app.add_option("--intra-gbs", intra_gbs,
                 "GB/s point to point between two ranks, for the cost model's prediction")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  MPI_Init(&argc, &argv);
  int status = 0;
  try {
    std::unique_ptr<Communicator> world = mpi_world_communicator();
    set_log_rank(world->rank(), world->size());
    MOE_CHECK(config_path.empty() != checkpoint.empty(), "pass --config or --checkpoint");
    MOE_CHECK((tflops > 0) == (intra_gbs > 0),
              "the cost model's prediction needs both --tflops and --intra-gbs");
    const Cluster cluster{tflops * 1e12, intra_gbs * 1e9, intra_gbs * 1e9};
    const Config base = checkpoint.empty()
                            ? load_config(config_path, overrides)
                            : parse_config(checkpoint_config(checkpoint), checkpoint, overrides);
    if (world->rank() == 0)
      std::printf(
          "# %d ranks, %s, %d warm-up + %d measured steps; per step: expert rows max/mean "
          "over ranks; MB sent per rank (mean, max): all-to-all, send_recv (sparse), "
          "all-reduce, all-gather; expert MB held (max); peak MB in use (max); step ms; ms per "
          "step in the experts and inside collectives (waiting included), mean and max over "
          "ranks%s\n"
          "%-10s %8s %14s %14s %14s %14s %10s %8s %9s %14s %14s%s\n",
          world->size(), checkpoint.empty() ? config_path.c_str() : checkpoint.c_str(), warmup,
          steps,
          tflops > 0 ? "; predicted by the cost model: expert ms (slowest rank), traffic ms" : "",
          "mode", "max/mean", "all2all", "send_recv", "all_red", "all_gath", "expert MB", "peak MB",
          "step ms", "expert ms", "collective ms", tflops > 0 ? "  model: expert traffic" : "");
    for (const std::string mode : {"ep", "fssdp", "fssdp-pred", "fssdp-rm", "llep"}) {
      Config config = base;
      config.parallel = ParallelConfig{};
      config.parallel.experts = mode == "ep"     ? ExpertPlacement::ep
                                : mode == "llep" ? ExpertPlacement::llep
                                                 : ExpertPlacement::fssdp;
      config.fssdp.rematerialize = mode == "fssdp-rm";
      config.fssdp.calibrate = mode != "fssdp-pred";
      config.parallel.ep = world->size();
      config.validate("bench_fssdp " + mode);
      const bool modeled = tflops > 0 && (mode == "ep" || mode == "fssdp");
      const Measured m =
          measure(*world, config, checkpoint, warmup, steps, modeled ? &cluster : nullptr);
      auto pair = [](int64_t mean, int64_t max) {
        char text[32];
        std::snprintf(text, sizeof(text), "%6.3f %6.3f", mean / 1e6, max / 1e6);
        return std::string(text);
      };
      if (world->rank() != 0) continue;
      std::printf("%-10s %8.3f %14s %14s %14s %14s %10.3f %8.1f %9.1f %6.1f %7.1f %6.1f %7.1f",
                  mode.c_str(), m.balance,
                  pair(m.mean[Collective::all_to_all], m.max[Collective::all_to_all]).c_str(),
                  pair(m.mean[Collective::send_recv], m.max[Collective::send_recv]).c_str(),
                  pair(m.mean[Collective::all_reduce], m.max[Collective::all_reduce]).c_str(),
                  pair(m.mean[Collective::all_gather], m.max[Collective::all_gather]).c_str(),
                  m.expert_mb, m.peak_mb, m.step_ms, m.expert_ms_mean, m.expert_ms_max,
                  m.collective_ms_mean, m.collective_ms_max);
      if (modeled)
        std::printf("  %12.1f %7.1f", m.predicted.compute,
                    m.predicted.dispatch + m.predicted.sparse);
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
    MPI_Abort(MPI_COMM_WORLD, status);
  }
  MPI_Finalize();
  return status;
}
