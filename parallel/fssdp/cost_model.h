// A cost model of one MoE layer's expert work and traffic in a training step (forward and
// backward), to predict on a cluster what the small runs here can only count: where FSSDP's
// balance outweighs its extra traffic (METHODS.md §1.8, the paper's speedup-against-skew figure).
//
// Decisions:
// - Counts first, time second: layer_counts() derives, from the global per-expert load share and
//   a placement (EP's contiguous blocks, or an FSSDP plan with its routing), what each rank does:
//   expert rows, and the bytes it sends to ranks on its node and on other nodes, per kind;
//   predict() turns counts into seconds with a cluster's FLOP rate and bandwidths. The counts are
//   the same quantities bench_fssdp measures on real ranks.
// - Every rank routes the same share of its tokens to each expert (the load share is global),
//   by the plan's routing: quotas (LLEP), balanced quotas (ExpertPlan::balance, calibrated FSSDP)
//   or the even, local-first split.
// - Time per rank = compute + all-to-all + sparse collectives, each from that rank's own counts;
//   the layer takes the slowest rank's time (every collective waits for it). Nothing overlaps,
//   so FSSDP's copies are charged in full (Hecate hides some behind attention).
// - Traffic: a rank's bytes to its node's ranks at the intra-node bandwidth, to other nodes at
//   the inter-node one, sent and received concurrently (the larger of the two counts). Dispatch is
//   four all-to-alls per layer and step (forward there and back, backward there and back), so a
//   row crosses twice each way; an expert copy brings its parameters in (all-gather) and sends its
//   gradient back (reduce-scatter).
// - Expert FLOPs: a SwiGLU expert's three [F, D] matmuls, 2 FLOPs per multiply-add, three times
//   for forward plus backward: 18 D F per row.
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/fssdp/expert_plan.h"

namespace moe {

struct ExpertLayerShape {
  int64_t tokens_per_rank = 0;  // tokens of one step on one rank
  int top_k = 1;
  int64_t d_model = 0, expert_hidden = 0;
  int bytes_per_element = 2;  // bf16 activations, weights and gradients on the wire (MoEForge's
                              // copies send their gradients back in f32: up to twice that)
};

struct Cluster {
  double flops = 0;          // sustained FLOP/s per rank
  double intra_node_bw = 0;  // bytes/s one rank sends to its node (NVLink)
  double inter_node_bw = 0;  // bytes/s one rank sends to other nodes (network)
};

// What one rank does for one MoE layer in one step.
struct RankCounts {
  int64_t rows = 0;                               // token rows its experts process
  double dispatch_intra = 0, dispatch_inter = 0;  // all-to-all bytes sent (or received: larger)
  double sparse_intra = 0, sparse_inter = 0;      // sparse collectives bytes sent (or received)
};

struct LayerTime {
  double compute = 0, dispatch = 0, sparse = 0;  // of the slowest rank, in seconds
  double total = 0;                              // the slowest rank's sum
  double balance = 0;                            // max / mean of rows over ranks
};

// share[e]: the fraction of token assignments that go to expert e (sums to 1). plan: where the
// experts are held (owners_only(contiguous owners) for EP).
std::vector<RankCounts> layer_counts(const std::vector<double>& share, const ExpertPlan& plan,
                                     const Topology& topology, const ExpertLayerShape& shape);

LayerTime predict(const std::vector<RankCounts>& counts, const Topology& topology,
                  const ExpertLayerShape& shape, const Cluster& cluster);

// `topology` with the traffic costs (Topology) that make routing weigh what predict() charges: a
// row exchanged with another rank adds 2 D elements to the rank's bytes each way (it goes out and
// comes back in forward and in backward), against its 18 D F FLOPs; a copy 3 D F elements.
Topology with_row_costs(Topology topology, const ExpertLayerShape& shape, const Cluster& cluster);

}  // namespace moe
