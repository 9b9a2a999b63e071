#include "layers/experts.h"

#include <numeric>

#include "kernels/ops.h"
#include "layers/tensor_parallel.h"

namespace moe {

// The placement of a stacked expert weight whose hidden units are on dim hidden_dim.
static Placement expert_placement(const ParallelGroups& groups, int hidden_dim,
                                  const std::optional<std::vector<int64_t>>& owned) {
  if (owned) return {ParamGroup::expert, TpMode::partial, {}, owned};
  const Split by_ep{0, group_rank(groups.ep), group_size(groups.ep)};
  if (groups.expert_tp)
    return {ParamGroup::expert, TpMode::split, {by_ep, tp_split(groups, hidden_dim)}};
  return {ParamGroup::expert, TpMode::partial, {by_ep}};
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

template <class Fn>
void Experts::for_each_block(const std::vector<int64_t>& counts, int64_t total_rows,
                             ExpertsImpl impl, int experts, Fn&& fn) const {
  MOE_ASSERT(static_cast<int>(counts.size()) == experts, "counts for ", counts.size(),
             " experts, expected ", experts);
  MOE_ASSERT(std::accumulate(counts.begin(), counts.end(), int64_t{0}) == total_rows,
             "expert counts do not add up to the ", total_rows, " permuted rows");
  int64_t row = 0;
  for (int e = 0; e < experts; ++e) {
    if (impl == ExpertsImpl::grouped) {
      if (counts[e] > 0) fn(e, row, counts[e]);
      row += counts[e];
    } else {
      for (int64_t i = 0; i < counts[e]; ++i) fn(e, row++, int64_t{1});
    }
  }
}

static FfnSaved rows_of(const FfnSaved& saved, int64_t first, int64_t rows) {
  return {saved.gate.narrow(first, rows), saved.up.narrow(first, rows),
          saved.hidden.narrow(first, rows)};
}

void Experts::forward(const Tensor& x, const std::vector<int64_t>& counts, FfnSaved& saved,
                      Tensor& y, Stream& stream, ExpertsImpl impl,
                      const std::vector<FfnWeights>* held) const {
  const int experts = held ? static_cast<int>(held->size()) : num_local_experts();
  for_each_block(counts, x.dim(0), impl, experts, [&](int e, int64_t first, int64_t rows) {
    FfnSaved block = rows_of(saved, first, rows);
    Tensor out = y.narrow(first, rows);
    ffn_forward(x.narrow(first, rows), held ? (*held)[e] : expert(e), block, out, stream);
  });
}

void Experts::backward(const Tensor& x, const std::vector<int64_t>& counts, const Tensor& dy,
                       const FfnSaved& saved, Tensor& dx, Stream& stream, ExpertsImpl impl,
                       const std::vector<FfnWeights>* held) const {
  const int experts = held ? static_cast<int>(held->size()) : num_local_experts();
  for_each_block(counts, x.dim(0), impl, experts, [&](int e, int64_t first, int64_t rows) {
    Tensor dx_rows = dx.narrow(first, rows);
    ffn_backward(x.narrow(first, rows), dy.narrow(first, rows), held ? (*held)[e] : expert(e),
                 rows_of(saved, first, rows), dx_rows, false, stream);
  });
}

}  // namespace moe
