#include "layers/token_dispatcher.h"

#include <algorithm>
#include <numeric>

#include "kernels/ops.h"
#include "layers/activation_sum.h"
#include "parallel/fssdp/replica_routing.h"

namespace moe {

namespace {

// TP rank t's share of a run of c rows: [c t / tp, c (t + 1) / tp).
int64_t share_begin(int64_t c, int t, int tp) { return c * t / tp; }
int64_t share_size(int64_t c, int t, int tp) {
  return share_begin(c, t + 1, tp) - share_begin(c, t, tp);
}

int64_t max_of(const std::vector<int64_t>& v) { return *std::max_element(v.begin(), v.end()); }

// An index list built on the host, on the stream's device.
Tensor on_device(Shape shape, const std::vector<int32_t>& values, Stream& stream) {
  return ops::to_device(Tensor::from_vector<int32_t>(shape, values), stream.device, stream);
}

}  // namespace

TokenDispatcher::TokenDispatcher(int num_experts, const ParallelGroups& groups, bool replicas)
    : num_experts_(num_experts),
      tp_(groups.tp),
      ep_(groups.ep),
      tp_size_(group_size(groups.tp)),
      tp_rank_(group_rank(groups.tp)),
      ep_size_(group_size(groups.ep)),
      ep_rank_(group_rank(groups.ep)),
      expert_tp_(groups.expert_tp) {
  MOE_CHECK(replicas || num_experts % ep_size_ == 0, "parallel.ep = ", ep_size_,
            " must divide moe.num_experts = ", num_experts);
}

DispatchPlan TokenDispatcher::plan(const Tensor& sorted_slots, const std::vector<int64_t>& counts,
                                   Stream& stream) const {
  const int experts = num_experts_, local = experts / ep_size_, tp = tp_size_;
  const std::vector<int64_t> all = gather_counts(counts);

  DispatchPlan plan;
  plan.rows = sorted_slots.numel();
  share_out(sorted_slots, counts, plan, stream);

  // Rows of expert `e` (local index) that TP rank t of EP rank s sends here or receives.
  auto rows_from = [&](int t, int s, int e) {
    return share_size(all[int64_t{s} * experts + ep_rank_ * local + e], t, tp);
  };
  for (int q = 0; q < ep_size_; ++q) {
    int64_t send = 0, recv = 0;
    for (int e = 0; e < local; ++e) {
      send += share_size(counts[q * local + e], tp_rank_, tp);
      recv += rows_from(tp_rank_, q, e);
    }
    plan.send_rows.push_back(send);
    plan.recv_rows.push_back(recv);
  }
  lay_out_arrivals(local, rows_from, plan, stream);
  return plan;
}

void TokenDispatcher::lay_out_arrivals(int local, const RowsFrom& rows_from, DispatchPlan& plan,
                                       Stream& stream) const {
  const int tp = tp_size_;
  plan.arrived_rows.clear();
  for (int t = 0; t < tp; ++t) {
    int64_t arrived = 0;
    for (int s = 0; s < ep_size_; ++s)
      for (int e = 0; e < local; ++e) arrived += rows_from(t, s, e);
    plan.arrived_rows.push_back(arrived);
  }
  std::vector<int> blocks;
  if (gathers_experts())
    for (int t = 0; t < tp; ++t) blocks.push_back(t);
  else
    blocks.push_back(tp_rank_);
  const int64_t block_rows =
      gathers_experts() ? max_of(plan.arrived_rows) : plan.arrived_rows[tp_rank_];
  plan.arrived = block_rows * static_cast<int64_t>(blocks.size());
  std::vector<int32_t> order;
  plan.expert_counts.assign(local, 0);
  for (int e = 0; e < local; ++e)
    for (size_t b = 0; b < blocks.size(); ++b) {
      int64_t offset = static_cast<int64_t>(b) * block_rows;
      for (int s = 0; s < ep_size_; ++s) {
        for (int before = 0; before < e; ++before) offset += rows_from(blocks[b], s, before);
        const int64_t n = rows_from(blocks[b], s, e);
        for (int64_t i = 0; i < n; ++i) order.push_back(static_cast<int32_t>(offset + i));
        plan.expert_counts[e] += n;
        for (int after = e; after < local; ++after) offset += rows_from(blocks[b], s, after);
      }
    }
  if (reorders())
    plan.expert_order = on_device({static_cast<int64_t>(order.size())}, order, stream);
}

void TokenDispatcher::share_out(const Tensor& sorted_slots, const std::vector<int64_t>& counts,
                                DispatchPlan& plan, Stream& stream) const {
  const int tp = tp_size_;
  if (tp == 1) {  // one share, the sorted slots as they are: nothing to read on the host
    plan.share_slots = sorted_slots;
    plan.share_offset = {0};
    plan.share_rows = {plan.rows};
    return;
  }
  const Tensor host_slots = ops::to_host(sorted_slots, stream);
  const int32_t* slots = host_slots.data<int32_t>();
  std::vector<int32_t> share_slots;
  for (int t = 0; t < tp; ++t) {
    plan.share_offset.push_back(static_cast<int64_t>(share_slots.size()));
    int64_t run = 0;
    for (int e = 0; e < num_experts_; ++e) {
      const int64_t first = run + share_begin(counts[e], t, tp);
      share_slots.insert(share_slots.end(), slots + first,
                         slots + first + share_size(counts[e], t, tp));
      run += counts[e];
    }
    plan.share_rows.push_back(static_cast<int64_t>(share_slots.size()) - plan.share_offset[t]);
  }
  plan.share_slots = on_device({plan.rows}, share_slots, stream);
  plan.share_gather = share_gather(plan.share_rows, stream);
}

Tensor TokenDispatcher::share_gather(const std::vector<int64_t>& share_rows, Stream& stream) const {
  std::vector<int32_t> gather;
  const int64_t padded_share = max_of(share_rows);
  for (int t = 0; t < tp_size_; ++t)
    for (int64_t i = 0; i < share_rows[t]; ++i)
      gather.push_back(static_cast<int32_t>(t * padded_share + i));
  return on_device({static_cast<int64_t>(gather.size())}, gather, stream);
}

std::vector<int64_t> TokenDispatcher::gather_counts(const std::vector<int64_t>& counts) const {
  MOE_ASSERT(static_cast<int>(counts.size()) == num_experts_, "counts of ", counts.size(),
             " experts");
  if (ep_size_ == 1) return counts;
  const Tensor mine = Tensor::from_vector<int64_t>({num_experts_}, counts);
  Tensor gathered = Tensor::empty({int64_t{ep_size_} * num_experts_}, DType::i64);
  Stream host;
  ep_->host().all_gather(mine, gathered, host);
  return gathered.to_vector<int64_t>();
}

DispatchPlan TokenDispatcher::plan_replicas(const Tensor& sorted_slots,
                                            const std::vector<int64_t>& all,
                                            const ExpertPlan& experts, const Topology& topology,
                                            Stream& stream) const {
  const int num = num_experts_, ranks = ep_size_, me = ep_rank_, tp = tp_size_;
  MOE_ASSERT(tp == 1 || experts.quota.empty(), "a planner's quotas need tp = 1");
  MOE_ASSERT(experts.experts() == num && topology.ranks == ranks, "FSSDP plan of ",
             experts.experts(), " experts on ", topology.ranks, " ranks for ", num, " on ", ranks);
  MOE_ASSERT(static_cast<int64_t>(all.size()) == int64_t{ranks} * num,
             "FSSDP dispatch: ", all.size(), " counts for ", ranks, " ranks of ", num, " experts");
  // routes[t][s][e][d]: rows of expert e that TP rank t of EP rank s sends to EP rank d. Tokens
  // are replicated over TP, so every rank knows every TP rank's share of every rank's counts.
  std::vector<std::vector<std::vector<std::vector<int64_t>>>> routes(tp);
  for (int t = 0; t < tp; ++t) {
    std::vector<int64_t> shares(all.size());  // TP share t of all
    for (size_t i = 0; i < all.size(); ++i) shares[i] = share_size(all[i], t, tp);
    routes[t] = route_every_rank(shares, experts, topology);
  }

  DispatchPlan plan;
  plan.rows = sorted_slots.numel();
  // Each TP rank's share of the slots in its send order: by destination, then expert; the share's
  // part of an expert's run is split among its destinations in rank order.
  std::vector<int64_t> run_start(num, 0);
  for (int e = 1; e < num; ++e) run_start[e] = run_start[e - 1] + all[int64_t{me} * num + e - 1];
  const Tensor host_slots = ops::to_host(sorted_slots, stream);
  const int32_t* slots = host_slots.data<int32_t>();
  std::vector<int32_t> share_slots;
  for (int t = 0; t < tp; ++t) {
    plan.share_offset.push_back(static_cast<int64_t>(share_slots.size()));
    std::vector<int64_t> taken(num);
    for (int e = 0; e < num; ++e) taken[e] = share_begin(all[int64_t{me} * num + e], t, tp);
    for (int d = 0; d < ranks; ++d) {
      int64_t rows = 0;
      for (int e = 0; e < num; ++e) {
        const int64_t n = routes[t][me][e][d], first = run_start[e] + taken[e];
        share_slots.insert(share_slots.end(), slots + first, slots + first + n);
        taken[e] += n;
        rows += n;
      }
      if (t == tp_rank_) plan.send_rows.push_back(rows);
    }
    plan.share_rows.push_back(static_cast<int64_t>(share_slots.size()) - plan.share_offset[t]);
  }
  plan.share_slots = on_device({plan.rows}, share_slots, stream);
  if (tp > 1) plan.share_gather = share_gather(plan.share_rows, stream);

  // Arrivals: the held experts, in expert order, are the local ones.
  const std::vector<std::vector<std::vector<int64_t>>>& mine = routes[tp_rank_];
  for (int s = 0; s < ranks; ++s) {
    int64_t rows = 0;
    for (int e = 0; e < num; ++e) rows += mine[s][e][me];
    plan.recv_rows.push_back(rows);
  }
  for (int e = 0; e < num; ++e)
    if (experts.holds(e, me)) plan.local_experts.push_back(e);
  lay_out_arrivals(
      static_cast<int>(plan.local_experts.size()),
      [&](int t, int s, int j) { return routes[t][s][plan.local_experts[j]][me]; }, plan, stream);
  return plan;
}

Tensor TokenDispatcher::to_expert_major(const Tensor& arrived, const DispatchPlan& plan,
                                        Stream& stream) const {
  if (!reorders()) return arrived;
  Tensor rows =
      Tensor::empty({plan.expert_order.numel(), arrived.dim(1)}, arrived.dtype(), arrived.device());
  ops::moe_permute(arrived, plan.expert_order, 1, rows, stream);
  return rows;
}

Tensor TokenDispatcher::to_arrival_order(const Tensor& rows, const DispatchPlan& plan,
                                         Stream& stream) const {
  if (!reorders()) return rows;
  Tensor arrived = Tensor::empty({plan.arrived, rows.dim(1)}, rows.dtype(), rows.device());
  ops::moe_permute_backward(rows, plan.expert_order, 1, arrived, stream);
  return arrived;
}

Tensor TokenDispatcher::exchange(const Tensor& rows, const std::vector<int64_t>& send,
                                 const std::vector<int64_t>& recv, Stream& stream) const {
  if (ep_size_ == 1) return rows;
  const int64_t total = std::accumulate(recv.begin(), recv.end(), int64_t{0});
  Tensor out = Tensor::empty({total, rows.dim(1)}, rows.dtype(), rows.device());
  ep_->all_to_all_v(rows, send, out, recv, stream);
  return out;
}

Tensor TokenDispatcher::gather_over_tp(const Tensor& rows, const std::vector<int64_t>& sizes,
                                       Stream& stream) const {
  const int64_t block = max_of(sizes), width = rows.dim(1);
  Tensor padded = ops::zeros({block, width}, rows.dtype(), rows.device(), stream);
  Tensor head = padded.narrow(0, rows.dim(0));
  ops::copy(rows, head, stream);
  Tensor out = Tensor::empty({block * tp_size_, width}, rows.dtype(), rows.device());
  tp_->all_gather(padded, out, stream);
  return out;
}

Tensor TokenDispatcher::reduce_scatter_over_tp(const Tensor& padded,
                                               const std::vector<int64_t>& sizes,
                                               Stream& stream) const {
  Tensor mine = Tensor::empty({max_of(sizes), padded.dim(1)}, padded.dtype(), padded.device());
  reduce_scatter_activations(*tp_, padded, mine, stream);
  return mine.narrow(0, sizes[tp_rank_]);
}

Tensor TokenDispatcher::all_shares(const Tensor& mine, const DispatchPlan& plan,
                                   Stream& stream) const {
  if (tp_size_ == 1) return mine;
  const Tensor padded = gather_over_tp(mine, plan.share_rows, stream);
  Tensor rows = Tensor::empty({plan.rows, mine.dim(1)}, mine.dtype(), mine.device());
  ops::moe_permute(padded, plan.share_gather, 1, rows, stream);
  return rows;
}

Tensor TokenDispatcher::dispatch(const Tensor& x, int k, const DispatchPlan& plan,
                                 Stream& stream) const {
  const Tensor mine =
      plan.share_slots.narrow(plan.share_offset[tp_rank_], plan.share_rows[tp_rank_]);
  Tensor send = Tensor::empty({mine.numel(), x.dim(1)}, x.dtype(), x.device());
  ops::moe_permute(x, mine, k, send, stream);
  Tensor arrived = exchange(send, plan.send_rows, plan.recv_rows, stream);
  if (gathers_experts()) arrived = gather_over_tp(arrived, plan.arrived_rows, stream);
  return to_expert_major(arrived, plan, stream);
}

void TokenDispatcher::combine(const Tensor& expert_out, const DispatchPlan& plan, Tensor& y_slots,
                              Stream& stream) const {
  Tensor arrived = to_arrival_order(expert_out, plan, stream);
  if (gathers_experts()) arrived = reduce_scatter_over_tp(arrived, plan.arrived_rows, stream);
  const Tensor back = exchange(arrived, plan.recv_rows, plan.send_rows, stream);
  const Tensor rows = all_shares(back, plan, stream);
  ops::moe_unpermute(rows, plan.share_slots, y_slots, stream);
}

Tensor TokenDispatcher::combine_backward(const Tensor& dy_slots, const DispatchPlan& plan,
                                         Stream& stream) const {
  Tensor drows = Tensor::empty({plan.rows, dy_slots.dim(1)}, dy_slots.dtype(), dy_slots.device());
  ops::moe_unpermute_backward(dy_slots, plan.share_slots, drows, stream);
  const Tensor mine = drows.narrow(plan.share_offset[tp_rank_], plan.share_rows[tp_rank_]);
  Tensor arrived = exchange(mine, plan.send_rows, plan.recv_rows, stream);
  if (gathers_experts()) arrived = gather_over_tp(arrived, plan.arrived_rows, stream);
  return to_expert_major(arrived, plan, stream);
}

void TokenDispatcher::dispatch_backward(const Tensor& dexpert_in, int k, const DispatchPlan& plan,
                                        Tensor& dx, Stream& stream) const {
  Tensor arrived = to_arrival_order(dexpert_in, plan, stream);
  if (gathers_experts()) arrived = reduce_scatter_over_tp(arrived, plan.arrived_rows, stream);
  const Tensor back = exchange(arrived, plan.recv_rows, plan.send_rows, stream);
  const Tensor rows = all_shares(back, plan, stream);
  ops::moe_permute_backward(rows, plan.share_slots, k, dx, stream);
}

}  // namespace moe
