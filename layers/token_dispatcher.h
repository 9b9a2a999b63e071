// Moves an MoE layer's permuted token rows to the ranks that hold their experts and back: the
// dropless all-to-all-v dispatcher of expert parallelism (DESIGN.md §3, "MoE layer flow"), with
// DeepSpeed-TED's duplicate token dropping over TP (METHODS.md §4.3).
//
// Decisions:
// - EP rank p holds experts [p E/ep, (p+1) E/ep), so rows sorted by expert are already grouped by
//   destination rank. The count exchange all-gathers every EP rank's per-expert counts, from which
//   each rank derives all send/receive sizes and orders locally; no other metadata moves.
// - Tokens are replicated over the TP group. Each TP rank dispatches only its share of each
//   expert's rows (share t of tp of every expert's run, by position), so the all-to-all moves 1/tp
//   of the bytes. Whole experts (no expert_tp) run on just those rows; with expert_tp the received
//   rows are all-gathered in the TP group so every TP rank runs its slice of the experts on all
//   of them, and the partial outputs are reduce-scattered back to the rank that received each row
//   (the all-reduce and the drop in one collective). After the reverse all-to-all the TP ranks
//   all-gather their outputs, so every rank combines every token.
// - Collectives need equal blocks per rank: uneven TP shares are padded with zero rows.
// - The arrived rows (by source rank) are reordered to be grouped by local expert with a row
//   gather (moe_permute with k = 1); its adjoint scatters them back.
// - Every step has its adjoint: all-to-all <-> reverse all-to-all, all-gather <-> reduce-scatter,
//   TP gather of outputs <-> taking one's own share. With ep = tp = 1 nothing is communicated.
// - FSSDP (plan_replicas): an expert may be held by several ranks of the EP group (the FSSDP
//   group), so rows go where route_every_rank sends them (replica_routing.h: the even split, or a
//   plan's quotas: LLEP's, or the balanced ones of a calibrated plan, which route_every_rank
//   computes for each TP share), grouped by destination and, within one, by expert; a rank's
//   local experts are the ones it holds, in expert order. Every rank derives every other rank's
//   routing, and every TP rank's of its share, from the gathered counts (routing is a pure
//   function, tokens are replicated over TP and the plan is the same on every TP rank), so the
//   count exchange stays one all-gather. With expert_tp the TP ranks of an EP rank hold the same
//   experts (each its slice), so they gather the rows each of them received as above.
//   dispatch/combine and their adjoints are unchanged.
#pragma once

#include <functional>
#include <vector>

#include "core/stream.h"
#include "core/tensor.h"
#include "parallel/fssdp/expert_plan.h"
#include "parallel/parallel_groups.h"

namespace moe {

// Everything one forward/backward pair of a layer needs to move its rows, from plan().
struct DispatchPlan {
  int64_t rows = 0;    // rows this rank routes, all TP shares together
  Tensor share_slots;  // i32[rows]: the slots, share by share, each share grouped by expert
  std::vector<int64_t> share_offset, share_rows;  // per TP rank: where its share is in share_slots
  Tensor share_gather;  // i32[rows]: where each share's rows are in a padded TP gather (tp > 1)
  std::vector<int64_t> send_rows, recv_rows;  // per EP rank, this rank's share
  std::vector<int64_t> arrived_rows;          // per TP rank: rows it received
  Tensor expert_order;  // i32: expert-major row r is arrived row expert_order[r] (undefined when
                        // rows arrive expert-major: one EP rank, experts not gathered over TP)
  int64_t arrived = 0;  // rows of the arrived layout (expert_tp: tp blocks, padded)
  std::vector<int64_t> expert_counts;  // rows per local expert, expert-major
  std::vector<int> local_experts;      // their global indices (plan_replicas; else implied)
};

class TokenDispatcher {
 public:
  // replicas: FSSDP (plan_replicas only); experts need not divide over the EP group then.
  TokenDispatcher(int num_experts, const ParallelGroups& groups, bool replicas = false);

  // sorted_slots i32[R]: this rank's slots grouped by expert, counts[e] of expert e (host).
  DispatchPlan plan(const Tensor& sorted_slots, const std::vector<int64_t>& counts,
                    Stream& stream) const;
  // Every EP rank's per-expert counts, all[s * E + e] (one all-gather on the host).
  std::vector<int64_t> gather_counts(const std::vector<int64_t>& counts) const;
  // FSSDP: the same, with experts held as `experts` says over the EP group (with expert_tp, each
  // TP rank holds its slice of them), from every EP rank's counts (gather_counts).
  DispatchPlan plan_replicas(const Tensor& sorted_slots, const std::vector<int64_t>& all_counts,
                             const ExpertPlan& experts, const Topology& topology,
                             Stream& stream) const;
  // x[N,D] -> the rows of this rank's local experts, expert-major [sum(expert_counts), D].
  Tensor dispatch(const Tensor& x, int k, const DispatchPlan& plan, Stream& stream) const;
  // The experts' outputs (expert-major; partial sums over TP with expert_tp) -> y_slots[N*k,D],
  // every slot of every token (dropped slots zero).
  void combine(const Tensor& expert_out, const DispatchPlan& plan, Tensor& y_slots,
               Stream& stream) const;
  // Adjoint of combine: dy_slots[N*k,D] -> gradient of the expert outputs (expert-major).
  Tensor combine_backward(const Tensor& dy_slots, const DispatchPlan& plan, Stream& stream) const;
  // Adjoint of dispatch: gradient of the expert inputs -> dx[N,D] (assigned).
  void dispatch_backward(const Tensor& dexpert_in, int k, const DispatchPlan& plan, Tensor& dx,
                         Stream& stream) const;

 private:
  // a2a over EP of this rank's rows: forward sends send_rows and receives recv_rows.
  Tensor exchange(const Tensor& rows, const std::vector<int64_t>& send,
                  const std::vector<int64_t>& recv, Stream& stream) const;
  // Every TP rank's block of `rows` (rank t has sizes[t] rows), padded to the largest block.
  Tensor gather_over_tp(const Tensor& rows, const std::vector<int64_t>& sizes,
                        Stream& stream) const;
  // Adjoint of gather_over_tp: sums the padded blocks over TP and keeps this rank's rows.
  Tensor reduce_scatter_over_tp(const Tensor& padded, const std::vector<int64_t>& sizes,
                                Stream& stream) const;
  // The TP shares of the sorted slots (each share's part of every expert's run) into plan; with
  // one TP rank, the slots themselves, so that planning reads only counts from the device.
  void share_out(const Tensor& sorted_slots, const std::vector<int64_t>& counts, DispatchPlan& plan,
                 Stream& stream) const;
  // Rows of local expert e that TP rank t of EP rank s sends to this EP rank.
  using RowsFrom = std::function<int64_t(int t, int s, int e)>;
  // The arrived layout into plan (arrived_rows, arrived, expert_counts, expert_order): TP blocks
  // (only this rank's unless experts gather, then each padded to the largest), by source rank,
  // then local expert; expert_order lists it expert by expert.
  void lay_out_arrivals(int local, const RowsFrom& rows_from, DispatchPlan& plan,
                        Stream& stream) const;
  // Where each share's rows are in a TP all-gather of the shares padded to the largest.
  Tensor share_gather(const std::vector<int64_t>& share_rows, Stream& stream) const;
  // This TP rank's share of rows -> every share's rows, in share_slots order (a TP all-gather).
  Tensor all_shares(const Tensor& mine, const DispatchPlan& plan, Stream& stream) const;
  // The arrived layout -> expert-major rows, and back (adjoint); no copy when they are the same.
  Tensor to_expert_major(const Tensor& arrived, const DispatchPlan& plan, Stream& stream) const;
  Tensor to_arrival_order(const Tensor& rows, const DispatchPlan& plan, Stream& stream) const;
  bool gathers_experts() const { return expert_tp_ && tp_size_ > 1; }
  bool reorders() const { return ep_size_ > 1 || gathers_experts(); }

  int num_experts_;
  Communicator *tp_, *ep_;
  int tp_size_, tp_rank_, ep_size_, ep_rank_;
  bool expert_tp_;
};

}  // namespace moe
