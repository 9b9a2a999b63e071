#include "layers/router.h"

#include <algorithm>

#include "kernels/ops.h"

namespace moe {

Router::Router(ParameterStore& store, const std::string& name, MoeConfig config, int64_t d_model,
               double init_std)
    : config_(config),
      num_experts_(config.num_experts),
      options_{config.top_k,
               config.router_score == RouterScore::sigmoid ? ops::RouterScore::sigmoid
                                                           : ops::RouterScore::softmax,
               config.renormalize,
               static_cast<float>(config.routed_scaling),
               config.n_group,
               config.topk_group},
      gate_(store, name + ".gate", d_model, config.num_experts, false, init_std) {
  if (config.expert_bias) expert_bias_ = &store.add_buffer(name + ".expert_bias", {num_experts_});
  if (config.router_skew > 0) {
    std::vector<double> skew(num_experts_);
    for (int64_t e = 0; e < num_experts_; ++e)
      skew[e] = config.router_skew *
                (1.0 - static_cast<double>(e) / std::max<int64_t>(num_experts_ - 1, 1)) /
                num_experts_;
    const Tensor wide = Tensor::from_vector<double>({num_experts_}, skew);
    Tensor host = Tensor::empty({num_experts_}, store.dtype());
    Stream stream{store.device(), nullptr};
    ops::convert(wide, host, stream);
    skew_ = ops::to_device(host, store.device(), stream);
  }
}

// The weight each token's score of expert i gets in L: E * f_i / (G * T_g), with f_i from the
// counts and the group's T_g local tokens. Host [G,E] in dtype.
static Tensor aux_weights(const AuxCounts& aux, int64_t group, int k, AuxLossNorm norm,
                          DType dtype) {
  const int64_t groups = aux.counts.dim(0), experts = aux.counts.dim(1);
  const double per_assignment =
      norm == AuxLossNorm::megatron ? 1.0 / (aux.tokens_per_group * k) : 1.0 / aux.tokens_per_group;
  Tensor weights = Tensor::empty(aux.counts.shape(), DType::f64);
  for (int64_t i = 0; i < aux.counts.numel(); ++i)
    weights.data<double>()[i] =
        aux.counts.data<double>()[i] * per_assignment * experts / (groups * group);
  if (dtype == DType::f64) return weights;
  Tensor converted = Tensor::empty(aux.counts.shape(), dtype);
  Stream stream;
  ops::convert(weights, converted, stream);
  return converted;
}

Tensor Router::selection_bias(Stream& stream) const {
  const Tensor learned = expert_bias_ ? expert_bias_->value : Tensor();
  if (!skew_.defined()) return learned;
  if (!learned.defined()) return skew_;
  Tensor sum = Tensor::empty(skew_.shape(), skew_.dtype(), skew_.device());
  ops::add(skew_, learned, sum, stream);
  return sum;
}

void Router::begin_step(Communicator* dp_group) const {
  dp_group_ = dp_group;
  step_counts_ = Tensor::zeros({1, num_experts_}, DType::f64);
  micro_batches_ = 0;
}

bool Router::global_batch(const CountSource& source) const {
  return config_.aux_loss_type == AuxLossType::global_batch && source.training;
}

Tensor Router::count(const RouterSaved& saved, const CountSource& source, Stream& stream) const {
  const int64_t tokens = saved.expert_ids.dim(0), groups = tokens / saved.group;
  Tensor counts = Tensor::empty({groups, num_experts_}, DType::i64, saved.expert_ids.device());
  ops::moe_expert_counts(saved.expert_ids, saved.group,
                         config_.aux_loss_norm == AuxLossNorm::switch_ ? 1 : options_.k, counts,
                         stream);
  if (global_batch(source) && dp_group_ && dp_group_->size() > 1)
    dp_group_->all_reduce(counts, ReduceOp::sum, stream);
  return counts;
}

AuxCounts Router::aux_counts(const Tensor& counts, const RouterSaved& saved,
                             const CountSource& source) const {
  AuxCounts aux{Tensor::empty(counts.shape(), DType::f64), saved.group};
  if (global_batch(source)) {
    if (!step_counts_.defined()) begin_step(dp_group_);
    ++micro_batches_;
    for (int64_t e = 0; e < num_experts_; ++e) {
      double& sum = step_counts_.data<double>()[e];
      sum += static_cast<double>(counts.data<int64_t>()[e]);
      aux.counts.data<double>()[e] = sum / micro_batches_;
    }
    aux.tokens_per_group = saved.group * (dp_group_ ? dp_group_->size() : 1);
    return aux;
  }
  for (int64_t i = 0; i < counts.numel(); ++i)
    aux.counts.data<double>()[i] = static_cast<double>(counts.data<int64_t>()[i]);
  return aux;
}

Tensor Router::balance_scores(const Tensor& scores, Stream& stream) const {
  if (options_.score != ops::RouterScore::sigmoid) return scores;
  Tensor normalized = Tensor::empty(scores.shape(), scores.dtype(), scores.device());
  ops::normalize_rows(scores, normalized, stream);
  return normalized;
}

// x in the router's dtype (its weight's): a widened copy of bf16 activations.
Tensor Router::input(const Tensor& x, Stream& stream) const {
  const DType dtype = gate_.weight().value.dtype();
  if (x.dtype() == dtype) return x;
  Tensor wide = Tensor::empty(x.shape(), dtype, x.device());
  ops::convert(x, wide, stream);
  return wide;
}

void Router::forward(const Tensor& activations, int64_t seq_len, const CountSource& source,
                     RouterSaved& saved, Stream& stream) const {
  const Tensor x = input(activations, stream);
  const int64_t tokens = x.dim(0);
  const int k = options_.k;
  const DType dtype = x.dtype();
  const Device device = x.device();
  saved.logits = Tensor::empty({tokens, num_experts_}, dtype, device);
  saved.scores = Tensor::empty({tokens, num_experts_}, dtype, device);
  saved.probs = Tensor::empty({tokens, k}, dtype, device);
  saved.expert_ids = Tensor::empty({tokens, k}, DType::i32, device);
  gate_.forward(x, saved.logits, stream);
  const Tensor bias = selection_bias(stream);
  ops::router_topk_forward(saved.logits, bias, options_, saved.probs, saved.expert_ids,
                           saved.scores, stream);

  saved.group = config_.aux_loss_type == AuxLossType::sequence ? seq_len : tokens;
  const int64_t groups = tokens / saved.group;
  saved.reads.clear();
  if (!source.reuse) saved.reads.push_back(count(saved, source, stream));
  Tensor score_sums = Tensor::empty({groups, num_experts_}, dtype, device);
  ops::group_sum(balance_scores(saved.scores, stream), saved.group, score_sums, stream);
  saved.reads.push_back(score_sums);
  saved.lse = Tensor::empty({tokens}, dtype, device);
  ops::logsumexp_rows(saved.logits, saved.lse, stream);
  Tensor lse_squares = ops::zeros({1}, DType::f64, device, stream);
  ops::sum_of_squares_into(saved.lse, lse_squares, stream);
  saved.reads.push_back(lse_squares);
}

void Router::finish_forward(const std::vector<Tensor>& reads, const CountSource& source,
                            RouterSaved& saved) const {
  MOE_ASSERT(reads.size() == saved.reads.size(), "Router::finish_forward: ", reads.size(),
             " reads for ", saved.reads.size());
  size_t next = 0;
  saved.aux = source.reuse ? *source.reuse : aux_counts(reads[next++], saved, source);
  const Tensor& score_sums = reads[next++];
  const Tensor weights =
      aux_weights(saved.aux, saved.group, options_.k, config_.aux_loss_norm, DType::f64);
  Tensor sums64 = Tensor::empty(score_sums.shape(), DType::f64);
  Stream host;
  ops::convert(score_sums, sums64, host);
  saved.aux_loss = 0;
  for (int64_t i = 0; i < weights.numel(); ++i)
    saved.aux_loss += weights.data<double>()[i] * sums64.data<double>()[i];
  const int64_t tokens = saved.lse.numel();
  saved.z_loss = reads[next].data<double>()[0] / static_cast<double>(tokens);
  saved.reads.clear();
}

void Router::backward(const Tensor& activations, const RouterSaved& saved, const Tensor& dprobs,
                      double loss_scale, Tensor& dx, Stream& stream) const {
  const Tensor x = input(activations, stream);
  const int64_t tokens = x.dim(0);
  const DType dtype = x.dtype();
  Tensor dscores;
  if (config_.aux_loss_coeff > 0) {
    Tensor weights = ops::to_device(
        aux_weights(saved.aux, saved.group, options_.k, config_.aux_loss_norm, dtype), x.device(),
        stream);
    ops::scale(weights, static_cast<float>(config_.aux_loss_coeff * loss_scale), stream);
    dscores = Tensor::empty(saved.scores.shape(), dtype, x.device());
    ops::group_broadcast(weights, saved.group, dscores, stream);
    if (options_.score == ops::RouterScore::sigmoid) {
      Tensor dnormalized = dscores;
      dscores = Tensor::empty(saved.scores.shape(), dtype, x.device());
      ops::normalize_rows_backward(saved.scores, dnormalized, dscores, stream);
    }
  }
  Tensor dlogits = Tensor::empty(saved.logits.shape(), dtype, x.device());
  ops::router_topk_backward(dprobs, dscores, saved.expert_ids, saved.scores, options_, dlogits,
                            stream);
  if (config_.z_loss_coeff > 0) {
    Tensor dlse = Tensor::empty({tokens}, dtype, x.device());
    ops::copy(saved.lse, dlse, stream);
    ops::scale(dlse, static_cast<float>(2.0 * config_.z_loss_coeff * loss_scale / tokens), stream);
    ops::logsumexp_rows_backward(saved.logits, saved.lse, dlse, dlogits, stream);
  }
  if (x.dtype() == dx.dtype()) return gate_.backward(x, dlogits, &dx, true, stream);
  Tensor dinput = Tensor::empty(x.shape(), x.dtype(), x.device());
  gate_.backward(x, dlogits, &dinput, false, stream);
  Tensor rounded = Tensor::empty(dx.shape(), dx.dtype(), dx.device());
  ops::convert(dinput, rounded, stream);
  ops::add(dx, rounded, dx, stream);
}

void Router::update_expert_bias(const std::vector<int64_t>& load) const {
  if (!expert_bias_) return;
  MOE_ASSERT(static_cast<int>(load.size()) == num_experts_, "load of ", load.size(), " experts");
  double mean = 0;
  for (int64_t l : load) mean += static_cast<double>(l) / num_experts_;
  const double rate = config_.expert_bias_rate;
  std::vector<double> steps(num_experts_);
  for (int e = 0; e < num_experts_; ++e)
    steps[e] = load[e] < mean ? rate : load[e] > mean ? -rate : 0.0;
  // The steps are made on the host and added where the bias lives (bias + step in its dtype).
  Tensor& bias = expert_bias_->value;
  Stream stream{bias.device(), nullptr};
  Tensor host_steps = Tensor::empty(bias.shape(), bias.dtype());
  ops::convert(Tensor::from_vector<double>(bias.shape(), steps), host_steps, stream);
  ops::add(bias, ops::to_device(host_steps, bias.device(), stream), bias, stream);
}

}  // namespace moe
