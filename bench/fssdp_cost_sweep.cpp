// The FSSDP cost model (parallel/fssdp/cost_model.h) swept over routing skew for a cluster and
// an MoE layer, in the spirit of the Hecate paper's speedup-against-skew figure: for each Zipf
// exponent s (expert e gets a share proportional to (e + 1)^-s), the predicted time of one MoE
// layer's expert work and traffic per step under expert parallelism and under FSSDP, their
// parts, the expert-work balance (max / mean rows) and the speedup.
//   build/bench/fssdp_cost_sweep [--ranks 32] [--ranks-per-node 8] [--experts 64] [--top-k 2]
//     [--tokens 16384] [--d-model 768] [--expert-hidden 1536] [--slots 4] [--overlap 0]
//     [--tflops 400] [--intra-gbs 450] [--inter-gbits 400] [--skews 0,0.5,1,1.5,2] [--even]
//     [--rows-only]
// FSSDP routes as calibrated FSSDP does: by balanced quotas unless the even, local-first split
// costs the slowest rank no more, rows and traffic weighed with the cluster's rates (the row
// costs of with_row_costs); --rows-only: weighing rows alone; --even: always the even split.
// Defaults: the paper's GPT-MoE-S layer (d 768, expert FFN 2d, 64 experts, top-2, 8 sequences of
// 2048 tokens per GPU) on 4 nodes of 8 H100-class GPUs (400 TFLOP/s sustained bf16, NVLink
// 450 GB/s, 400 Gb/s per GPU between nodes).
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "parallel/fssdp/cost_model.h"
#include "parallel/fssdp/materialization.h"
#include "parallel/fssdp/resharding.h"

int main(int argc, char** argv) {
  using namespace moe;
  CLI::App app{"Predicted MoE layer time under EP and FSSDP against routing skew."};
  int ranks = 32, per_node = 8, experts = 64, top_k = 2, slots = 4, overlap = 0;
  int64_t tokens = 16384, d_model = 768, hidden = 1536;
  double tflops = 400, intra_gbs = 450, inter_gbits = 400;
  std::vector<double> skews{0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2};
  app.add_option("--ranks", ranks)->check(CLI::PositiveNumber);
  app.add_option("--ranks-per-node", per_node)->check(CLI::PositiveNumber);
  app.add_option("--experts", experts)->check(CLI::PositiveNumber);
  app.add_option("--top-k", top_k)->check(CLI::PositiveNumber);
  app.add_option("--tokens", tokens, "tokens per rank and step")->check(CLI::PositiveNumber);
  app.add_option("--d-model", d_model)->check(CLI::PositiveNumber);
  app.add_option("--expert-hidden", hidden)->check(CLI::PositiveNumber);
  app.add_option("--slots", slots, "FSSDP copies per rank")->check(CLI::NonNegativeNumber);
  app.add_option("--overlap", overlap, "FSSDP overlap degree; 0 = experts")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--tflops", tflops, "sustained TFLOP/s per rank")->check(CLI::PositiveNumber);
  app.add_option("--intra-gbs", intra_gbs, "GB/s per rank within a node")
      ->check(CLI::PositiveNumber);
  app.add_option("--inter-gbits", inter_gbits, "Gb/s per rank between nodes")
      ->check(CLI::PositiveNumber);
  app.add_option("--skews", skews, "Zipf exponents")->delimiter(',');
  bool even = false;
  app.add_flag("--even", even,
               "FSSDP tokens split evenly, local first (fssdp.calibrate: false), not by balanced "
               "quotas");
  bool rows_only = false;
  app.add_flag("--rows-only", rows_only,
               "choose between balanced quotas and the even split by rows alone, not traffic");
  CLI11_PARSE(app, argc, argv);
  if (top_k > experts) {
    std::fprintf(stderr, "error: --top-k %d exceeds --experts %d\n", top_k, experts);
    return 1;
  }

  const ExpertLayerShape shape{tokens, top_k, d_model, hidden, 2};
  const Cluster cluster{tflops * 1e12, intra_gbs * 1e9, inter_gbits * 1e9 / 8};
  const Topology nodes{ranks, per_node};
  const Topology topology = rows_only ? nodes : with_row_costs(nodes, shape, cluster);
  const std::vector<int> owner = contiguous_owners(1, experts, topology);
  std::printf(
      "# %d ranks (%d per node), %d experts top-%d, %lld tokens/rank, d %lld, F %lld; "
      "%.0f TFLOP/s, %.0f GB/s in a node, %.0f Gb/s between; FSSDP slots %d, %s "
      "(row costs %.3f in a node, %.3f between)\n",
      ranks, per_node, experts, top_k, static_cast<long long>(tokens),
      static_cast<long long>(d_model), static_cast<long long>(hidden), tflops, intra_gbs,
      inter_gbits, slots,
      even        ? "even split"
      : rows_only ? "balanced quotas where they leave fewer rows"
                  : "balanced quotas where they cost less",
      topology.intra_node_row_cost, topology.inter_node_row_cost);
  std::printf("# ms per MoE layer and step (forward + backward expert work and traffic)\n");
  std::printf("%5s | %8s %8s %8s %8s | %8s %8s %8s %8s %8s | %7s\n", "skew", "EP bal", "compute",
              "a2a", "total", "FSSDP bal", "compute", "a2a", "sparse", "total", "speedup");
  for (double skew : skews) {
    std::vector<double> share(experts);
    for (int e = 0; e < experts; ++e) share[e] = std::pow(e + 1.0, -skew);
    const double sum = std::accumulate(share.begin(), share.end(), 0.0);
    for (double& s : share) s /= sum;
    const LayerTime ep =
        predict(layer_counts(share, owners_only(owner), topology, shape), topology, shape, cluster);
    ExpertPlan plan =
        plan_materialization(owner, share, {slots, overlap > 0 ? overlap : experts}, topology);
    plan.balance = !even;
    const LayerTime fs =
        predict(layer_counts(share, plan, topology, shape), topology, shape, cluster);
    std::printf("%5.2f | %8.2f %8.3f %8.3f %8.3f | %8.2f %8.3f %8.3f %8.3f %8.3f | %7.2f\n", skew,
                ep.balance, 1e3 * ep.compute, 1e3 * ep.dispatch, 1e3 * ep.total, fs.balance,
                1e3 * fs.compute, 1e3 * fs.dispatch, 1e3 * fs.sparse, 1e3 * fs.total,
                ep.total / fs.total);
  }
  return 0;
}
