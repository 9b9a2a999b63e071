#include "trainer/expert_resharding.h"

#include <map>
#include <tuple>

#include "core/log.h"
#include "kernels/ops.h"

namespace moe {

namespace {

// What one row of an expert weight carries: value, exp_avg, exp_avg_sq.
constexpr int kParts = 3;

Tensor row_of(const Tensor& flat, int64_t row, int64_t row_size) {
  return flat.narrow(row * row_size, row_size);
}

// The elements of one expert's row on this rank (its TP slice with expert_tp).
int64_t row_elements(const Parameter& p) { return p.shape.with_dim(0, 1).numel(); }

}  // namespace

int reshard_experts(LanguageModel& model, ParameterStore& store, AdamW& optimizer,
                    const std::vector<int>& owners, Stream& stream) {
  FssdpCoordinator* fssdp = model.fssdp();
  MOE_ASSERT(fssdp, "reshard_experts without FSSDP");
  const std::vector<std::vector<Parameter*>> layers = model.fssdp_parameters();
  const int rank = fssdp->rank(), num_layers = fssdp->layers();
  const auto experts = static_cast<int>(fssdp->owners().size()) / num_layers;
  const std::vector<int>& before = fssdp->owners();
  MOE_ASSERT(static_cast<int>(layers.size()) == num_layers && owners.size() == before.size(),
             "reshard_experts: ", layers.size(), " layers of weights, ", owners.size(), " owners");
  std::vector<int> count_before(fssdp->topology().ranks, 0), count_after(count_before);
  for (size_t g = 0; g < owners.size(); ++g) {
    ++count_before.at(before[g]);
    ++count_after.at(owners[g]);
  }
  MOE_ASSERT(count_before == count_after,
             "reshard_experts: every rank must keep its number of experts (the arenas keep their "
             "size)");

  // Every row this rank holds, copied out: (layer, expert, weight) -> value, exp_avg, exp_avg_sq.
  using Key = std::tuple<int, int, int>;
  std::map<Key, std::vector<Tensor>> rows;
  const std::vector<MomentRun> runs = optimizer.moment_runs();
  auto moments_of = [&store](const std::vector<MomentRun>& all, const Parameter* p) {
    if (p->shape.numel() == 0)  // a rank that owns none of the layer's experts
      return std::pair(Tensor::empty({0}, store.dtype(), store.device()),
                       Tensor::empty({0}, store.dtype(), store.device()));
    for (const MomentRun& run : all)
      if (run.parameter == p) {
        MOE_ASSERT(run.begin == 0 && run.end == p->shape.numel(),
                   "FSSDP resharding needs whole "
                   "moments per expert weight (no ZeRO-1)");
        return std::pair(run.exp_avg, run.exp_avg_sq);
      }
    MOE_THROW(InternalError, "no moments for ", p->name);
  };
  for (int l = 0; l < num_layers; ++l)
    for (int w = 0; w < static_cast<int>(layers[l].size()); ++w) {
      const Parameter& p = *layers[l][w];
      const int64_t size = row_elements(p);
      const auto [m, v] = moments_of(runs, &p);
      const Tensor values = p.value.view({p.shape.numel()});
      for (size_t i = 0; i < p.placement.rows->size(); ++i) {
        std::vector<Tensor>& parts = rows[{l, static_cast<int>((*p.placement.rows)[i]), w}];
        for (const Tensor& from : {values, m, v}) {
          parts.push_back(Tensor::empty({size}, store.dtype(), store.device()));
          ops::copy(row_of(from, static_cast<int64_t>(i), size), parts.back(), stream);
        }
      }
    }

  // Moving experts: old owner sends, new owner receives, in (layer, expert, weight, part) order.
  std::vector<Transfer> sends, recvs;
  int moved = 0;
  for (int l = 0; l < num_layers; ++l)
    for (int e = 0; e < experts; ++e) {
      const int from = before[l * experts + e], to = owners[l * experts + e];
      if (from == to) continue;
      ++moved;
      if (rank != from && rank != to) continue;
      for (int w = 0; w < static_cast<int>(layers[l].size()); ++w) {
        const Parameter& p = *layers[l][w];
        const int64_t size = row_elements(p);
        std::vector<Tensor>& parts = rows[{l, e, w}];
        if (rank == to) parts.assign(kParts, Tensor());
        for (int part = 0; part < kParts; ++part) {
          if (rank == from) sends.push_back({to, parts[part]});
          if (rank == to) {
            parts[part] = Tensor::empty({size}, store.dtype(), store.device());
            recvs.push_back({from, parts[part]});
          }
        }
      }
    }
  if (moved == 0) return 0;
  if (!sends.empty() || !recvs.empty()) fssdp->group()->send_recv(sends, recvs, stream);

  std::vector<std::pair<Parameter*, std::vector<int64_t>>> placement;
  for (int l = 0; l < num_layers; ++l) {
    std::vector<int64_t> mine;
    for (int e = 0; e < experts; ++e)
      if (owners[l * experts + e] == rank) mine.push_back(e);
    for (Parameter* p : layers[l]) placement.emplace_back(p, mine);
  }
  store.set_rows(placement);
  fssdp->set_owners(owners);
  const std::vector<MomentRun> after = optimizer.moment_runs();
  for (int l = 0; l < num_layers; ++l)
    for (int w = 0; w < static_cast<int>(layers[l].size()); ++w) {
      const Parameter& p = *layers[l][w];
      const int64_t size = row_elements(p);
      const auto [m, v] = moments_of(after, &p);
      const Tensor values = p.value.view({p.shape.numel()});
      const Tensor targets[kParts] = {values, m, v};
      for (size_t i = 0; i < p.placement.rows->size(); ++i) {
        const std::vector<Tensor>& parts =
            rows.at({l, static_cast<int>((*p.placement.rows)[i]), w});
        for (int part = 0; part < kParts; ++part) {
          Tensor target = row_of(targets[part], static_cast<int64_t>(i), size);
          ops::copy(parts[part], target, stream);
        }
      }
    }
  store.refresh_compute(stream);  // the moved rows' bf16 copies
  return moved;
}

int maybe_reshard_experts(LanguageModel& model, ParameterStore& store, AdamW& optimizer,
                          int64_t step, Stream& stream) {
  FssdpCoordinator* fssdp = model.fssdp();
  if (!fssdp || fssdp->reshard_interval() == 0 || (step + 1) % fssdp->reshard_interval() != 0)
    return 0;
  const std::vector<int> owners = fssdp->proposed_owners();
  if (owners == fssdp->owners()) return 0;
  const int moved = reshard_experts(model, store, optimizer, owners, stream);
  MOE_LOG_INFO("step ", step + 1, ": FSSDP resharded for the recent loads, ", moved, " of ",
               owners.size(), " experts moved to new owners with their optimizer state");
  return moved;
}

}  // namespace moe
