#include "layers/moe_layer.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "parallel/fssdp/sparse_collectives.h"

namespace moe {

MoeLayer::MoeLayer(ParameterStore& store, const std::string& name, MoeConfig config,
                   int64_t d_model, double init_std, const ParallelGroups& groups,
                   FssdpCoordinator* fssdp, int fssdp_layer)
    : config_(config),
      fssdp_(fssdp),
      fssdp_layer_(fssdp_layer),
      router_(store, name + ".router", config, d_model, init_std),
      experts_(store, name + ".experts", config.num_experts, d_model, config.expert_hidden,
               init_std, groups, fssdp ? std::optional(fssdp->owned(fssdp_layer)) : std::nullopt),
      dispatcher_(config.num_experts, groups, fssdp != nullptr) {
  if (config.shared_experts > 0)
    shared_ = std::make_unique<Mlp>(
        store, name + ".shared_experts", d_model,
        int64_t{config.shared_experts} * config.effective_shared_expert_hidden(), init_std, groups);
  if (shared_ && config.shared_expert_gate)
    shared_gate_ =
        std::make_unique<Linear>(store, name + ".shared_expert_gate", d_model, 1, false, init_std);
}

std::shared_ptr<PendingTransfers> MoeLayer::start_materialize(const ExpertPlan& plan, DType dtype,
                                                              std::vector<FfnWeights>& held,
                                                              Stream& stream) const {
  fssdp_->finish_pending(stream);  // one transfer at a time between the same ranks
  const int rank = fssdp_->rank();
  const int64_t hidden = experts_.hidden(), d_model = experts_.d_model();
  held.clear();
  std::vector<ExpertChunk> chunks(plan.experts());
  const std::vector<int64_t> owned_experts = fssdp_->owned(fssdp_layer_);
  size_t owned = 0;
  for (int e = 0; e < plan.experts(); ++e) {
    if (!plan.holds(e, rank)) continue;
    FfnWeights w;
    if (plan.owner[e] == rank) {
      MOE_ASSERT(owned < owned_experts.size() && owned_experts[owned] == e, "FSSDP: expert ", e,
                 " is not among the ones this rank owns");
      w = experts_.expert(static_cast<int>(owned++));
    } else {
      w.w_gate = Tensor::empty({hidden, d_model}, dtype, stream.device);
      w.w_up = Tensor::empty({hidden, d_model}, dtype, stream.device);
      w.w_down = Tensor::empty({d_model, hidden}, dtype, stream.device);
    }
    chunks[e] = {w.w_gate, w.w_up, w.w_down};
    held.push_back(w);
  }
  return start_sparse_all_gather(plan, chunks, fssdp_->group(), stream);
}

void MoeLayer::prefetch(DType dtype, MoeSaved& saved, Stream& stream) const {
  if (!fssdp_ || !fssdp_->planned_before_routing()) return;
  saved.holders = fssdp_->plan(fssdp_layer_);
  saved.arriving = start_materialize(saved.holders, dtype, saved.held, stream);
}

void MoeLayer::reduce_copies(const ExpertPlan& plan, const std::vector<FfnWeights>& held,
                             Stream& stream) const {
  std::vector<ExpertChunk> grads(plan.experts());
  size_t j = 0;
  for (int e = 0; e < plan.experts(); ++e)
    if (plan.holds(e, fssdp_->rank())) {
      grads[e] = {held[j].dw_gate, held[j].dw_up, held[j].dw_down};
      ++j;
    }
  fssdp_->defer(start_sparse_reduce_scatter(plan, grads, fssdp_->group(), stream), stream);
}

void MoeLayer::forward(const Tensor& x, int64_t seq_len, const CountSource& source, MoeSaved& saved,
                       Tensor& y, Stream& stream, ExpertsImpl impl) const {
  const int64_t tokens = x.dim(0), d_model = x.dim(1);
  const int k = config_.top_k, experts = config_.num_experts;
  router_.forward(x, seq_len, source, saved.router, stream);

  Tensor all_slots = Tensor::empty({tokens * k}, DType::i32, x.device());
  Tensor counts = Tensor::empty({experts}, DType::i64, x.device());
  ops::moe_sort_by_expert(saved.router.expert_ids, experts, all_slots, counts, stream);
  std::vector<Tensor> reads = saved.router.reads;
  reads.push_back(counts);  // sizes the exchange and the GEMMs
  reads = ops::to_host(reads, stream);
  const Tensor host_counts = reads.back();
  reads.pop_back();
  router_.finish_forward(reads, source, saved.router);
  saved.load = host_counts.to_vector<int64_t>();
  std::vector<int64_t> rows_per_expert = saved.load;
  Tensor sorted_slots = all_slots;
  saved.dropped = 0;
  if (config_.capacity_factor > 0) {
    const auto capacity = static_cast<int64_t>(
        std::ceil(static_cast<double>(k) * tokens / experts * config_.capacity_factor));
    Tensor kept = Tensor::empty({tokens * k}, DType::i32, x.device());
    Tensor kept_counts = Tensor::empty({experts}, DType::i64, x.device());
    const ops::DropPolicy policy = config_.drop_policy == DropPolicy::position
                                       ? ops::DropPolicy::position
                                       : ops::DropPolicy::probs;
    const int64_t rows = ops::moe_apply_capacity(all_slots, host_counts, saved.router.probs,
                                                 capacity, policy, kept, kept_counts, stream);
    sorted_slots = kept.narrow(0, rows);
    for (int64_t& count : rows_per_expert) count = std::min(count, capacity);  // as kept_counts
    saved.dropped = tokens * k - rows;
  }
  if (fssdp_) {
    const std::vector<int64_t> all = dispatcher_.gather_counts(rows_per_expert);
    std::vector<int64_t> tokens(experts, 0);  // per expert, over the FSSDP group
    for (size_t i = 0; i < all.size(); ++i) tokens[i % experts] += all[i];
    const ExpertPlan& plan = fssdp_->plan_forward(fssdp_layer_, tokens);
    // Not prefetched: the copies travel during the token dispatch and the owned experts' GEMMs.
    if (saved.holders.owner.empty()) {
      saved.holders = plan;
      saved.arriving = start_materialize(saved.holders, x.dtype(), saved.held, stream);
    }
    saved.plan =
        dispatcher_.plan_replicas(sorted_slots, all, saved.holders, fssdp_->topology(), stream);
  } else {
    saved.plan = dispatcher_.plan(sorted_slots, rows_per_expert, stream);
  }
  saved.permuted = dispatcher_.dispatch(x, k, saved.plan, stream);
  const int64_t rows = saved.permuted.dim(0);
  saved.expert_out = Tensor::empty({rows, d_model}, x.dtype(), x.device());
  CopiesInFlight copies;
  if (saved.arriving) {
    for (int e : saved.plan.local_experts)
      copies.arriving.push_back(saved.holders.owner[e] != fssdp_->rank());
    copies.wait = [&saved] {
      saved.arriving->wait();
      saved.arriving.reset();
    };
  }
  experts_.forward(saved.permuted, saved.plan.expert_counts, saved.experts, saved.expert_out,
                   stream, impl, fssdp_ ? &saved.held : nullptr,
                   saved.arriving ? &copies : nullptr);
  if (fssdp_ && fssdp_->rematerialize()) saved.held.clear();  // gathered again in backward
  saved.y_slots = Tensor::empty({tokens * k, d_model}, x.dtype(), x.device());
  dispatcher_.combine(saved.expert_out, saved.plan, saved.y_slots, stream);
  ops::moe_combine(saved.y_slots, saved.router.probs, y, stream);

  if (shared_) {
    saved.shared = ffn_saved_for(tokens, shared_->hidden(), x.dtype(), x.device());
    saved.shared_out = Tensor::empty({tokens, d_model}, x.dtype(), x.device());
    shared_->forward(x, saved.shared, saved.shared_out, stream);
    Tensor gated = saved.shared_out;
    if (shared_gate_) {
      saved.shared_gate = Tensor::empty({tokens, 1}, x.dtype(), x.device());
      shared_gate_->forward(x, saved.shared_gate, stream);
      gated = Tensor::empty({tokens, d_model}, x.dtype(), x.device());
      ops::sigmoid_gate_forward(saved.shared_out, saved.shared_gate, gated, stream);
    }
    ops::add(y, gated, y, stream);
  }
}

void MoeLayer::backward(const Tensor& x, const MoeSaved& saved, const Tensor& dy, double loss_scale,
                        Tensor& dx, Stream& stream, ExpertsImpl impl) const {
  const int64_t tokens = x.dim(0);
  const int k = config_.top_k;
  Tensor dy_slots = Tensor::empty(saved.y_slots.shape(), x.dtype(), x.device());
  Tensor dprobs = Tensor::empty(saved.router.probs.shape(), saved.router.probs.dtype(), x.device());
  ops::moe_combine_backward(dy, saved.y_slots, saved.router.probs, dy_slots, dprobs, stream);
  const Tensor dexpert_out = dispatcher_.combine_backward(dy_slots, saved.plan, stream);
  Tensor dpermuted = Tensor::empty(saved.permuted.shape(), x.dtype(), x.device());
  std::vector<FfnWeights> held = saved.held;
  if (fssdp_ && fssdp_->rematerialize())
    if (auto arriving = start_materialize(saved.holders, x.dtype(), held, stream)) arriving->wait();
  const int rank = fssdp_ ? fssdp_->rank() : 0;
  const DType grad_dtype = accumulation_dtype(x.dtype());  // the gradient arena's
  for (size_t j = 0; j < held.size(); ++j) {
    if (saved.holders.owner[saved.plan.local_experts[j]] == rank) continue;
    FfnWeights& copy = held[j];  // a copy's gradient starts at zero for each backward
    copy.dw_gate = ops::zeros(copy.w_gate.shape(), grad_dtype, x.device(), stream);
    copy.dw_up = ops::zeros(copy.w_up.shape(), grad_dtype, x.device(), stream);
    copy.dw_down = ops::zeros(copy.w_down.shape(), grad_dtype, x.device(), stream);
  }
  experts_.backward(saved.permuted, saved.plan.expert_counts, dexpert_out, saved.experts, dpermuted,
                    stream, impl, fssdp_ ? &held : nullptr);
  if (fssdp_) reduce_copies(saved.holders, held, stream);
  MOE_ASSERT(dx.dim(0) == tokens, "dx rows");
  dispatcher_.dispatch_backward(dpermuted, k, saved.plan, dx, stream);
  router_.backward(x, saved.router, dprobs, loss_scale, dx, stream);
  if (!shared_) return;
  Tensor dshared = dy;
  if (shared_gate_) {
    dshared = Tensor::empty(dy.shape(), x.dtype(), x.device());
    Tensor dgate = Tensor::empty(saved.shared_gate.shape(), x.dtype(), x.device());
    ops::sigmoid_gate_backward(dy, saved.shared_out, saved.shared_gate, dshared, dgate, stream);
    shared_gate_->backward(x, dgate, &dx, true, stream);
  }
  shared_->backward(x, dshared, saved.shared, dx, true, stream);
}

}  // namespace moe
