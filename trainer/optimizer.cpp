#include "trainer/optimizer.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "layers/tensor_parallel.h"
#include "trainer/gradient_sync.h"

namespace moe {

AdamW::AdamW(ParameterStore& store, const TrainConfig& train, const ParallelGroups& groups,
             bool zero, bool owned_experts)
    : store_(store), train_(train), groups_(groups), zero_(zero) {
  MOE_ASSERT(store.allocated(), "AdamW needs the parameters allocated");
  for (ParamGroup group : {ParamGroup::dense, ParamGroup::expert}) {
    Segment s;
    s.group = group;
    s.range = store.range(group);
    s.lo = s.range.begin;
    s.hi = s.range.end;
    Communicator* over = reduction_group(groups, group);
    if (zero && group_size(over) > 1 && !(owned_experts && group == ParamGroup::expert)) {
      s.shard_group = over;
      s.slice = (s.range.size() + over->size() - 1) / over->size();
      s.lo = s.range.begin + std::min(s.range.size(), over->rank() * s.slice);
      s.hi = std::min(s.range.end, s.lo + s.slice);
    }
    Stream stream{store.device(), nullptr};
    s.m = ops::zeros({s.hi - s.lo}, store.dtype(), store.device(), stream);
    s.v = ops::zeros({s.hi - s.lo}, store.dtype(), store.device(), stream);
    segments_.push_back(std::move(s));
  }
}

int64_t AdamW::moment_elements() const {
  int64_t n = 0;
  for (const Segment& s : segments_) n += s.m.numel();
  return n;
}

Tensor AdamW::owned_gradient(const Segment& s, Stream& stream) {
  Tensor all = store_.grads().narrow(s.range.begin, s.range.size());
  const float average = 1.0f / static_cast<float>(group_size(groups_.dp));
  if (!s.shard_group) {
    if (zero_ && group_size(groups_.dp) > 1) {  // an expert group of one edp rank
      all_reduce_sum(reduction_group(groups_, s.group), all, stream);
      ops::scale(all, average, stream);
    }
    return all;
  }
  const int ranks = s.shard_group->size();
  Tensor padded = ops::zeros({s.slice * ranks}, store_.dtype(), store_.device(), stream);
  Tensor head = padded.narrow(0, s.range.size());
  ops::copy(all, head, stream);
  Tensor mine = Tensor::empty({s.slice}, store_.dtype(), store_.device());
  s.shard_group->reduce_scatter(padded, mine, ReduceOp::sum, stream);
  ops::scale(mine, average, stream);
  return mine.narrow(0, s.hi - s.lo);
}

bool AdamW::primary(const Segment& s, const Parameter& p) const {
  // Sharded, the slices of the shard group are all different; only TP copies repeat.
  if (s.shard_group) return p.placement.tp == TpMode::split || group_rank(groups_.tp) == 0;
  return holds_primary_copy(p.placement, groups_);
}

void AdamW::add_counted_squares(const Segment& s, const Tensor& grad, Tensor& squares,
                                Stream& stream) const {
  for (const Parameter& p : store_.parameters()) {
    if (p.placement.group != s.group || !primary(s, p)) continue;
    const int64_t begin = std::max(p.arena_offset, s.lo),
                  end = std::min(p.arena_offset + p.shape.numel(), s.hi);
    if (begin < end)
      ops::sum_of_squares_into(grad.narrow(begin - s.lo, end - begin), squares, stream);
  }
}

std::vector<MomentRun> AdamW::moment_runs() {
  std::vector<MomentRun> runs;
  for (Segment& s : segments_)
    for (const Parameter& p : store_.parameters()) {
      const int64_t begin = std::max(p.arena_offset, s.lo),
                    end = std::min(p.arena_offset + p.shape.numel(), s.hi);
      if (p.placement.group != s.group || begin >= end) continue;
      runs.push_back({&p, begin - p.arena_offset, end - p.arena_offset,
                      s.m.narrow(begin - s.lo, end - begin), s.v.narrow(begin - s.lo, end - begin),
                      primary(s, p)});
    }
  return runs;
}

double AdamW::step(double lr, Stream& stream) {
  std::vector<Tensor> grads;
  // Summed where the gradients are, in f64, and read once.
  Tensor squares = ops::zeros({1}, DType::f64, store_.device(), stream);
  for (const Segment& s : segments_) {
    grads.push_back(owned_gradient(s, stream));
    add_counted_squares(s, grads.back(), squares, stream);
  }
  Tensor total = ops::host_copy(squares, stream);
  Stream host;
  if (groups_.world) all_reduce_sum(&groups_.world->host(), total, host);
  const double norm = std::sqrt(total.data<double>()[0]);
  if (!std::isfinite(norm)) return norm;  // an overflow: no update (every rank sees the same norm)
  const bool clip = train_.grad_clip > 0 && norm > train_.grad_clip && std::isfinite(norm);
  ++step_;
  ops::AdamWOptions options{static_cast<float>(lr), static_cast<float>(train_.beta1),
                            static_cast<float>(train_.beta2), static_cast<float>(train_.eps), 0.0f};
  Tensor values = store_.values();
  for (size_t i = 0; i < segments_.size(); ++i) {
    Segment& s = segments_[i];
    if (clip) ops::scale(grads[i], static_cast<float>(train_.grad_clip / (norm + 1e-6)), stream);
    for (const Parameter& p : store_.parameters()) {
      const int64_t begin = std::max(p.arena_offset, s.lo),
                    end = std::min(p.arena_offset + p.shape.numel(), s.hi);
      if (p.placement.group != s.group || begin >= end) continue;
      Tensor value = values.narrow(begin, end - begin), m = s.m.narrow(begin - s.lo, end - begin),
             v = s.v.narrow(begin - s.lo, end - begin);
      options.weight_decay = p.weight_decay ? static_cast<float>(train_.weight_decay) : 0.0f;
      ops::adamw_step(value, grads[i].narrow(begin - s.lo, end - begin), m, v, options, step_,
                      stream);
    }
    if (!s.shard_group) continue;
    Tensor gathered =
        Tensor::empty({s.slice * s.shard_group->size()}, store_.dtype(), store_.device());
    Tensor mine = ops::zeros({s.slice}, store_.dtype(), store_.device(), stream);
    Tensor owned = mine.narrow(0, s.hi - s.lo);
    ops::copy(values.narrow(s.lo, s.hi - s.lo), owned, stream);
    s.shard_group->all_gather(mine, gathered, stream);
    Tensor range = values.narrow(s.range.begin, s.range.size());
    ops::copy(gathered.narrow(0, s.range.size()), range, stream);
  }
  return norm;
}

}  // namespace moe
