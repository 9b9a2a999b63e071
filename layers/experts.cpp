#include "layers/experts.h"

#include <algorithm>
#include <numeric>

#include "kernels/concurrently.h"
#include "kernels/ops.h"
#include "layers/tensor_parallel.h"

namespace moe {

// The placement of a stacked expert weight whose hidden units are on dim hidden_dim.
static Placement expert_placement(const ParallelGroups& groups, int hidden_dim,
                                  const std::optional<std::vector<int64_t>>& owned) {
  std::vector<Split> splits;
  if (!owned) splits.push_back({0, group_rank(groups.ep), group_size(groups.ep)});
  if (groups.expert_tp) splits.push_back(tp_split(groups, hidden_dim));
  return {ParamGroup::expert, groups.expert_tp ? TpMode::split : TpMode::partial, splits, owned};
}

// num_experts, once checked to split evenly over EP (FSSDP owners hold any number).
static int64_t split_experts(int num_experts, const ParallelGroups& groups, bool owned) {
  MOE_CHECK(owned || num_experts % group_size(groups.ep) == 0,
            "parallel.ep = ", group_size(groups.ep),
            " must divide moe.num_experts = ", num_experts);
  return num_experts;
}

Experts::Experts(ParameterStore& store, const std::string& name, int num_experts, int64_t d_model,
                 int64_t hidden, double init_std, const ParallelGroups& groups,
                 const std::optional<std::vector<int64_t>>& owned)
    : d_model_(d_model),
      hidden_(groups.expert_tp ? tp_share(hidden, "moe.expert_hidden", groups) : hidden),
      w_gate_(store.add(name + ".w_gate",
                        {split_experts(num_experts, groups, owned.has_value()), hidden, d_model},
                        Init::normal, init_std, true, expert_placement(groups, 1, owned))),
      w_up_(store.add(name + ".w_up", {num_experts, hidden, d_model}, Init::normal, init_std, true,
                      expert_placement(groups, 1, owned))),
      w_down_(store.add(name + ".w_down", {num_experts, d_model, hidden}, Init::normal, init_std,
                        true, expert_placement(groups, 2, owned))) {}

FfnWeights Experts::expert(int e) const {
  auto slice = [e](const Tensor& t) {
    return t.defined() ? t.narrow(e, 1).view({t.dim(1), t.dim(2)}) : Tensor();  // frozen: no grad
  };
  return {slice(w_gate_.compute), slice(w_up_.compute), slice(w_down_.compute),
          slice(w_gate_.grad),    slice(w_up_.grad),    slice(w_down_.grad)};
}

void Experts::for_each_block(const char* name, const Tensor& x, const std::vector<int64_t>& counts,
                             ExpertsImpl impl, const std::vector<FfnWeights>* held,
                             const std::function<void(const FfnWeights&, int64_t, int64_t)>& fn,
                             const CopiesInFlight* in_flight) const {
  const int experts = held ? static_cast<int>(held->size()) : num_local_experts();
  MOE_ASSERT(static_cast<int>(counts.size()) == experts, "counts for ", counts.size(),
             " experts, expected ", experts);
  std::vector<int64_t> first(experts + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), first.begin() + 1);
  MOE_ASSERT(first.back() == x.dim(0), "expert counts do not add up to the ", x.dim(0),
             " permuted rows");
  std::vector<int> order;
  for (int e = 0; e < experts; ++e)
    if (counts[e] > 0) order.push_back(e);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return counts[a] > counts[b]; });
  const auto run = [&](const std::vector<int>& experts_now) {
    ops::concurrently(name, x.device(), experts_now, [&](int e) {
      const FfnWeights w = held ? (*held)[e] : expert(e);
      if (impl == ExpertsImpl::grouped) return fn(w, first[e], counts[e]);
      for (int64_t row = first[e]; row < first[e + 1]; ++row) fn(w, row, 1);
    });
  };
  if (!in_flight) return run(order);
  MOE_ASSERT(held && in_flight->arriving.size() == held->size(),
             "copies in flight: ", in_flight->arriving.size(), " flags for the held experts");
  std::vector<int> present, arriving;
  for (int e : order) (in_flight->arriving[e] ? arriving : present).push_back(e);
  run(present);
  in_flight->wait();
  run(arriving);
}

// Expert blocks of the transposed activations: rows [first, first + rows) of a [width * R] tensor
// as a [width, rows] matrix.
static Tensor block(const Tensor& t, int64_t width, int64_t first, int64_t rows) {
  return t.narrow(width * first, width * rows).view({width, rows});
}

void Experts::forward(const Tensor& x, const std::vector<int64_t>& counts, ExpertsSaved& saved,
                      Tensor& y, Stream& stream, ExpertsImpl impl,
                      const std::vector<FfnWeights>* held, const CopiesInFlight* in_flight) const {
  const int64_t rows = x.dim(0), f = hidden_;
  saved.gate_up = Tensor::empty({2 * f * rows}, x.dtype(), x.device());
  saved.hidden = Tensor::empty({f * rows}, x.dtype(), x.device());
  for_each_block(
      "experts_forward", x, counts, impl, held,
      [&](const FfnWeights& w, int64_t first, int64_t n) {
        const Tensor xe = x.narrow(first, n);
        Tensor gate_up = block(saved.gate_up, 2 * f, first, n);
        Tensor gate = gate_up.narrow(0, f), up = gate_up.narrow(f, f);
        Tensor hidden = block(saved.hidden, f, first, n), ye = y.narrow(first, n);
        ops::matmul(w.w_gate, xe, gate, false, true, 1.0f, 0.0f, stream);
        ops::matmul(w.w_up, xe, up, false, true, 1.0f, 0.0f, stream);
        ops::swiglu_forward(gate, up, hidden, stream);
        ops::matmul(hidden, w.w_down, ye, true, true, 1.0f, 0.0f, stream);
      },
      in_flight);
}

void Experts::backward(const Tensor& x, const std::vector<int64_t>& counts, const Tensor& dy,
                       const ExpertsSaved& saved, Tensor& dx, Stream& stream, ExpertsImpl impl,
                       const std::vector<FfnWeights>* held) const {
  const int64_t rows = x.dim(0), f = hidden_;
  const Tensor dhidden_all = Tensor::empty({f * rows}, x.dtype(), x.device());
  const Tensor dgate_up_all = Tensor::empty({2 * f * rows}, x.dtype(), x.device());
  for_each_block("experts_backward", x, counts, impl, held,
                 [&](const FfnWeights& w, int64_t first, int64_t n) {
                   const Tensor xe = x.narrow(first, n), dye = dy.narrow(first, n);
                   const Tensor gate_up = block(saved.gate_up, 2 * f, first, n);
                   const Tensor hidden = block(saved.hidden, f, first, n);
                   Tensor dhidden = block(dhidden_all, f, first, n);
                   Tensor dgate_up = block(dgate_up_all, 2 * f, first, n);
                   Tensor dgate = dgate_up.narrow(0, f), dup = dgate_up.narrow(f, f),
                          dxe = dx.narrow(first, n);
                   ops::matmul(w.w_down, dye, dhidden, true, true, 1.0f, 0.0f, stream);
                   ops::swiglu_backward(dhidden, gate_up.narrow(0, f), gate_up.narrow(f, f), dgate,
                                        dup, stream);
                   if (w.dw_down.defined()) {  // not for a frozen model
                     Tensor dw_down = w.dw_down, dw_gate = w.dw_gate, dw_up = w.dw_up;
                     ops::matmul(dye, hidden, dw_down, true, true, 1.0f, 1.0f, stream);
                     ops::matmul(dgate, xe, dw_gate, false, false, 1.0f, 1.0f, stream);
                     ops::matmul(dup, xe, dw_up, false, false, 1.0f, 1.0f, stream);
                   }
                   ops::matmul(dgate, w.w_gate, dxe, true, false, 1.0f, 0.0f, stream);
                   ops::matmul(dup, w.w_up, dxe, true, false, 1.0f, 1.0f, stream);
                 });
}

}  // namespace moe
