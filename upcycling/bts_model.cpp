#include "upcycling/bts_model.h"

#include <algorithm>
#include <filesystem>
#include <regex>

#include "checkpoint/checkpoint.h"
#include "config/yaml_io.h"
#include "core/log.h"
#include "kernels/ops.h"

namespace moe {
namespace fs = std::filesystem;

static std::string join_names(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

std::string bts_decoder_name(const std::string& dir) {
  fs::path path = fs::path(dir).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  static const std::regex step("step_[0-9]{8}");
  if (std::regex_match(path.filename().string(), step)) path = path.parent_path();
  return path.filename().string();
}

std::vector<std::string> bts_expert_names(const BtsConfig& bts) {
  std::vector<std::string> names;
  for (const std::string& dir : bts.experts) {
    const std::string name = bts_decoder_name(dir);
    if (std::find(bts.drop.begin(), bts.drop.end(), name) == bts.drop.end()) names.push_back(name);
  }
  return names;
}

MayDiffer bts_changed_parameters(const BtsConfig& saved, const BtsConfig& now) {
  const std::vector<std::string> before = bts_expert_names(saved), after = bts_expert_names(now);
  std::vector<std::string> changed;
  for (const std::string& name : before)
    if (std::find(after.begin(), after.end(), name) == after.end()) {
      MOE_LOG_INFO("BTS: expert '", name,
                   "' is not in this run: its stitch parameters in the checkpoint are left out");
      changed.push_back(name);
    }
  for (const std::string& name : after)
    if (std::find(before.begin(), before.end(), name) == before.end()) {
      MOE_LOG_INFO("BTS: expert '", name,
                   "' is new: its stitch parameters start from their initialization");
      changed.push_back(name);
    }
  if (changed.empty()) return {};
  return [changed](const std::string& parameter) {
    if (parameter.rfind("stitch.", 0) != 0) return false;
    const size_t layer_end = parameter.find('.', 7);
    for (const std::string& name : changed)
      if (parameter.compare(layer_end + 1, name.size() + 1, name + ".") == 0) return true;
    return false;
  };
}

MayDiffer bts_checkpoint_changes(const std::string& dir, const Config& config) {
  if (config.model.kind != ModelKind::bts) return {};
  const Config saved = parse_config(checkpoint_config(dir), dir);
  MOE_CHECK(saved.model.kind == ModelKind::bts, dir, " is a ", saved.model.kind,
            " checkpoint, not a BTS run's (its stitch layers)");
  return bts_changed_parameters(saved.bts, config.bts);
}

// The committed step directory `dir` names: itself, or the newest one in a run directory.
static std::string committed_step(const std::string& dir, const std::string& key) {
  MOE_CHECK(fs::is_directory(dir), key, " = '", dir, "' is not a directory");
  if (is_committed(dir)) return dir;
  const std::string latest = latest_checkpoint(dir);
  MOE_CHECK(!latest.empty(), key, " = '", dir,
            "' holds no committed checkpoint (a step_XXXXXXXX directory with COMMIT)");
  return latest;
}

std::string bts_attached_path(const std::string& name) { return "decoders/" + name; }

// The committed step directory decoder `name` loads from: the checkpoint's copy, or `dir`'s.
static std::string decoder_step(const std::string& name, const std::string& dir,
                                const std::string& key, const std::string& checkpoint) {
  if (!checkpoint.empty()) {
    const std::string attached = (fs::path(checkpoint) / bts_attached_path(name)).string();
    if (is_committed(attached)) return attached;
  }
  return committed_step(dir, key);
}

std::vector<BtsDecoder> resolve_bts_decoders(const BtsConfig& bts, const std::string& checkpoint) {
  std::vector<std::string> all;
  for (const std::string& dir : bts.experts) all.push_back(bts_decoder_name(dir));
  for (const std::string& name : bts.drop)
    MOE_CHECK(std::find(all.begin(), all.end(), name) != all.end(), "bts.drop names '", name,
              "', which is not one of bts.experts' names [", join_names(all), "]");
  std::vector<BtsDecoder> decoders;
  const std::string hub_dir = decoder_step("hub", bts.seed, "bts.seed", checkpoint);
  decoders.push_back({"hub", hub_dir, parse_config(checkpoint_config(hub_dir), hub_dir)});
  for (const std::string& dir : bts.experts) {
    const std::string name = bts_decoder_name(dir);
    if (std::find(bts.drop.begin(), bts.drop.end(), name) != bts.drop.end()) continue;
    for (const BtsDecoder& other : decoders)
      MOE_CHECK(other.name != name, "two of bts.experts are named '", name,
                "' (an expert is named by its run directory); rename one",
                name == "hub" ? " ('hub' is the seed's name)" : "");
    const std::string step_dir = decoder_step(name, dir, "bts.experts", checkpoint);
    decoders.push_back({name, step_dir, parse_config(checkpoint_config(step_dir), step_dir)});
  }
  MOE_CHECK(decoders.size() > 1,
            "bts.drop leaves no expert; a BTS model of the seed alone is the seed (evaluate "
            "bts.seed instead)");
  const ModelConfig& hub = decoders[0].config.model;
  for (const BtsDecoder& d : decoders) {
    const ModelConfig& m = d.config.model;
    MOE_CHECK(m.kind == ModelKind::decoder, d.step_dir, " is a ", m.kind,
              " checkpoint; BTS stitches decoders (model.kind: decoder)");
    MOE_CHECK(
        m.d_model == hub.d_model && m.vocab_size == hub.vocab_size && m.n_layers == hub.n_layers,
        "expert '", d.name, "' (", d.step_dir, ") has d_model ", m.d_model, ", vocab_size ",
        m.vocab_size, ", n_layers ", m.n_layers, " but the seed (", hub_dir, ") has ", hub.d_model,
        ", ", hub.vocab_size, ", ", hub.n_layers,
        ": BTS needs branches of the seed, with its shape and tokenizer");
  }
  return decoders;
}

int bts_model_group_size(int world_size, const ParallelConfig& parallel) {
  const int dp = parallel.dp == 0 ? world_size : parallel.dp;
  MOE_CHECK(world_size % dp == 0, "model.kind bts: parallel.dp = ", dp, " must divide the ",
            world_size, " ranks (each replica gets world / dp ranks)");
  return world_size / dp;
}

struct BtsModel::Tower {
  explicit Tower(DType dtype) : store(dtype) {}
  ParameterStore store;
  std::unique_ptr<Model> model;
};

BtsModel::BtsModel(const Config& config, ParameterStore& stitch_store, const ParallelGroups& groups,
                   const std::string& checkpoint)
    : stitch_store_(stitch_store),
      group_(groups.tp),
      group_rank_(group_rank(groups.tp)),
      group_size_(group_size(groups.tp)),
      decoders_(resolve_bts_decoders(config.bts, checkpoint)),
      self_contained_(config.bts.self_contained) {
  const ModelConfig& shape = decoders_[0].config.model;
  const int n = static_cast<int>(decoders_.size());
  d_model_ = shape.d_model;
  vocab_ = shape.vocab_size;
  stitch_every_ = config.bts.stitch_every;
  MOE_CHECK(shape.n_layers % stitch_every_ == 0, "bts.stitch_every = ", stitch_every_,
            " must divide the decoders' n_layers = ", shape.n_layers,
            " (the last stitch follows the last layer)");
  MOE_CHECK(group_size_ <= n, "model.kind bts: ", group_size_, " ranks per replica for ", n,
            " decoders (the hub and ", n - 1,
            " experts) would leave ranks idle; raise parallel.dp or use fewer ranks");
  MOE_CHECK(config.data.seq_len <= shape.max_seq_len, "data.seq_len = ", config.data.seq_len,
            " exceeds the decoders' max_seq_len = ", shape.max_seq_len);
  // Every rank that hosts decoder t (the same group rank in every replica) reads it together.
  ParallelGroups readers;
  readers.world = readers.dp = groups.dp;
  for (int t = 0; t < n; ++t) {
    auto tower = std::make_unique<Tower>(stitch_store.dtype());
    tower->model = std::make_unique<Model>(decoders_[t].config.model, decoders_[t].config.moe,
                                           tower->store, ParallelGroups{},
                                           ModelOptions{.recompute = config.train.recompute});
    if (is_local(t)) {
      tower->store.allocate(0, false);
      load_checkpoint(decoders_[t].step_dir, {&tower->store, false, {}}, readers);
    }
    towers_.push_back(std::move(tower));
  }
  std::vector<std::string> experts;
  for (int t = 1; t < n; ++t) experts.push_back(decoders_[t].name);
  const int count = shape.n_layers / stitch_every_;
  std::string layout;
  for (int i = 0; i < count; ++i) {
    const StitchKind kind =
        (count - 1 - i) % 2 == 0 ? StitchKind::experts_into_hub : StitchKind::hub_into_experts;
    stitches_.push_back(
        std::make_unique<StitchLayer>(stitch_store, i, kind, experts, d_model_,
                                      Placement{ParamGroup::dense, TpMode::partial, {}}));
    layout +=
        " " + std::string(stitch_kind_name(kind)) + "@" + std::to_string((i + 1) * stitch_every_);
  }
  std::string hosts, sources;
  for (int t = 0; t < n; ++t) {
    hosts += " " + decoders_[t].name + ":" + std::to_string(host_of(t));
    sources += " " + decoders_[t].name + "=" + decoders_[t].step_dir;
  }
  MOE_LOG_INFO("BTS: decoders", sources, "; stitch layers (kind@after layer):", layout,
               "; decoder:group rank", hosts);
}

BtsModel::~BtsModel() = default;

const ParameterStore& BtsModel::decoder_store(int decoder) const {
  return towers_.at(decoder)->store;
}

std::vector<Tensor> BtsModel::gather_experts(const std::vector<Tensor>& states,
                                             Stream& stream) const {
  const int n = static_cast<int>(decoders_.size());
  std::vector<Tensor> experts(n - 1);
  std::vector<Transfer> sends, recvs;
  for (int t = 1; t < n; ++t) {
    if (is_local(t) && group_rank_ == 0) {
      experts[t - 1] = states[t];
    } else if (is_local(t)) {
      sends.push_back({0, states[t]});
    } else if (group_rank_ == 0) {
      experts[t - 1] = Tensor::empty({saved_tokens_, d_model_}, stitch_store_.dtype());
      recvs.push_back({host_of(t), experts[t - 1]});
    }
  }
  if (group_size_ > 1) group_->send_recv(sends, recvs, stream);
  return experts;
}

Tensor BtsModel::broadcast_hub(const std::vector<Tensor>& states, Stream& stream) const {
  Tensor hub = group_rank_ == 0 ? states[0]
                                : Tensor::empty({saved_tokens_, d_model_}, stitch_store_.dtype());
  if (group_size_ > 1) group_->broadcast(hub, 0, stream);
  return hub;
}

// grad += d, or grad = d when grad has none yet.
static void accumulate(Tensor& grad, const Tensor& d, Stream& stream) {
  if (grad.defined())
    ops::add(grad, d, grad, stream);
  else
    grad = d;
}

void BtsModel::scatter_expert_grads(const std::vector<Tensor>& dexperts, std::vector<Tensor>& grads,
                                    Stream& stream) const {
  const int n = static_cast<int>(decoders_.size());
  std::vector<Transfer> sends, recvs;
  std::vector<Tensor> received(n);
  for (int t = 1; t < n; ++t) {
    if (group_rank_ == 0 && !is_local(t)) sends.push_back({host_of(t), dexperts[t - 1]});
    if (group_rank_ != 0 && is_local(t)) {
      received[t] = Tensor::empty({saved_tokens_, d_model_}, stitch_store_.dtype());
      recvs.push_back({0, received[t]});
    }
  }
  if (group_size_ > 1) group_->send_recv(sends, recvs, stream);
  for (int t = 1; t < n; ++t)
    if (is_local(t)) accumulate(grads[t], group_rank_ == 0 ? dexperts[t - 1] : received[t], stream);
}

void BtsModel::reduce_hub_grad(Tensor& contribution, std::vector<Tensor>& grads,
                               Stream& stream) const {
  std::vector<Transfer> sends, recvs;
  std::vector<Tensor> received;
  if (group_rank_ == 0) {
    for (int r = 1; r < group_size_; ++r) {
      received.push_back(Tensor::empty(contribution.shape(), contribution.dtype()));
      recvs.push_back({r, received.back()});
    }
  } else {
    sends.push_back({0, contribution});
  }
  if (group_size_ > 1) group_->send_recv(sends, recvs, stream);
  if (group_rank_ != 0) return;
  for (const Tensor& r : received) ops::add(contribution, r, contribution, stream);
  ops::add(grads[0], contribution, grads[0], stream);
}

ModelOutput BtsModel::forward(const Tensor& inputs, const Tensor& targets, bool keep_for_backward,
                              Stream& stream) {
  const int n = static_cast<int>(decoders_.size());
  saved_.assign(stitches_.size(), StitchInputs{});
  saved_tokens_ = inputs.numel();
  std::vector<Tensor> h(n);
  for (int t = 0; t < n; ++t)
    if (is_local(t)) h[t] = towers_[t]->model->begin_forward(inputs, targets, stream);
  for (int i = 0; i < num_stitches(); ++i) {
    const bool keep_blocks = keep_for_backward && i > 0;  // nothing trains below stitch 0
    for (int t = 0; t < n; ++t)
      if (is_local(t))
        h[t] = towers_[t]->model->forward_blocks(i * stitch_every_, (i + 1) * stitch_every_, h[t],
                                                 keep_blocks, stream);
    const StitchLayer& stitch = *stitches_[i];
    StitchInputs& in = saved_[i];
    if (stitch.kind() == StitchKind::experts_into_hub) {
      const std::vector<Tensor> experts = gather_experts(h, stream);
      if (group_rank_ == 0) {
        in.hub = h[0];
        in.saved.resize(1);
        h[0] = stitch.mix_into_hub(in.hub, experts, in.saved[0], stream);
      }
    } else {
      in.hub = broadcast_hub(h, stream);
      in.saved.resize(n - 1);
      for (int t = 1; t < n; ++t)
        if (is_local(t))
          h[t] = stitch.mix_into_expert(t - 1, in.hub, h[t], in.saved[t - 1], stream);
    }
    if (!keep_for_backward) in = StitchInputs{};
  }
  ModelOutput out;
  Tensor loss = Tensor::zeros({1}, DType::f64);
  if (group_rank_ == 0) {  // elsewhere the logits stay undefined: full_logits sends them
    const ModelOutput hub = towers_[0]->model->finish_forward(h[0], keep_for_backward, stream);
    loss.data<double>()[0] = hub.lm_loss;
    out.logits = hub.logits;
  }
  if (group_size_ > 1) group_->broadcast(loss, 0, stream);
  out.lm_loss = out.total = loss.data<double>()[0];
  if (!keep_for_backward) saved_.clear();
  return out;
}

void BtsModel::backward(double loss_scale, Stream& stream) {
  MOE_ASSERT(!saved_.empty(), "BtsModel::backward without a forward that kept its activations");
  const int n = static_cast<int>(decoders_.size());
  std::vector<Tensor> g(n);
  if (group_rank_ == 0) g[0] = towers_[0]->model->begin_backward(loss_scale, stream);
  for (int i = num_stitches() - 1; i >= 0; --i) {
    const StitchLayer& stitch = *stitches_[i];
    StitchInputs& in = saved_[i];
    if (stitch.kind() == StitchKind::experts_into_hub) {
      std::vector<Tensor> dexperts;
      if (group_rank_ == 0) {
        Tensor dhub;
        stitch.mix_into_hub_backward(in.hub, in.saved[0], g[0], dhub, dexperts, stream);
        g[0] = dhub;
      }
      scatter_expert_grads(dexperts, g, stream);
    } else {
      Tensor contribution = Tensor::zeros({saved_tokens_, d_model_}, stitch_store_.dtype());
      for (int t = 1; t < n; ++t)
        if (is_local(t)) {
          Tensor dexpert;
          stitch.mix_into_expert_backward(t - 1, in.hub, in.saved[t - 1], g[t], contribution,
                                          dexpert, stream);
          g[t] = dexpert;
        }
      reduce_hub_grad(contribution, g, stream);
    }
    in = StitchInputs{};
    if (i == 0) break;
    // The frozen decoders' auxiliary losses are not trained: loss_scale 0 for their blocks.
    for (int t = 0; t < n; ++t)
      if (is_local(t))
        g[t] = towers_[t]->model->backward_blocks(i * stitch_every_, (i + 1) * stitch_every_, g[t],
                                                  0.0, stream);
  }
  saved_.clear();
}

Tensor BtsModel::full_logits(const Tensor& shard, Stream& stream) const {
  Tensor full =
      group_rank_ == 0 ? shard : Tensor::empty({saved_tokens_, vocab_}, stitch_store_.dtype());
  if (group_size_ > 1) group_->broadcast(full, 0, stream);
  return full;
}

ParameterCounts BtsModel::parameter_counts() const {
  ParameterCounts counts;
  for (const auto& tower : towers_) {
    const ParameterCounts c = tower->model->parameter_counts();
    counts.total += c.total;
    counts.active_per_token += c.active_per_token;
    counts.embedding += c.embedding;
  }
  for (const Parameter& p : stitch_store_.parameters()) counts.trainable += p.global_shape.numel();
  counts.total += counts.trainable;
  counts.active_per_token += counts.trainable;
  return counts;
}

double BtsModel::flops_per_token(int64_t seq_len) const {
  // Forward is a third of a decoder's training FLOPs and the input-gradient pass through the
  // layers above the first stitch another third of their share; stitch weights train fully.
  const double above_first = static_cast<double>(num_stitches() - 1) / num_stitches();
  double flops = 6.0 * static_cast<double>(parameter_counts().trainable);
  for (const auto& tower : towers_)
    flops += tower->model->flops_per_token(seq_len) * (1.0 + above_first) / 3.0;
  return flops;
}

std::map<std::string, std::string> BtsModel::checkpoint_attachments() const {
  std::map<std::string, std::string> attachments;
  if (self_contained_)
    for (const BtsDecoder& d : decoders_) attachments[bts_attached_path(d.name)] = d.step_dir;
  return attachments;
}

}  // namespace moe
