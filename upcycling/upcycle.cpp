#include "upcycling/upcycle.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/yaml_io.h"
#include "core/rng.h"
#include "layers/model.h"

namespace moe {

namespace {

constexpr const char* kExperts = ".moe.experts.";

// "layers.3.moe.experts.w_up" -> "layers.3.mlp.w_up": the dense FFN matrix an expert comes from.
std::string dense_source(const std::string& name, const char* part) {
  const size_t at = name.find(part);
  return name.substr(0, at) + ".mlp." + name.substr(at + std::strlen(part));
}

bool contains(const std::string& name, const char* part) {
  return name.find(part) != std::string::npos;
}

// floor(ratio * size) distinct indices of [0, size), sorted: a partial Fisher-Yates shuffle.
std::vector<int64_t> pick(int64_t size, double ratio, const Philox& rng) {
  const auto count = static_cast<int64_t>(std::floor(ratio * static_cast<double>(size)));
  std::vector<int64_t> all(size);
  std::iota(all.begin(), all.end(), 0);
  for (int64_t j = 0; j < count; ++j) {
    const auto k =
        j + std::min<int64_t>(size - j - 1, static_cast<int64_t>(rng.uniform(j) * (size - j)));
    std::swap(all[j], all[k]);
  }
  std::vector<int64_t> picked(all.begin(), all.begin() + count);
  std::sort(picked.begin(), picked.end());
  return picked;
}

// The element offsets of neuron `n` in an expert matrix [F, D] (rows) or [D, F] (columns).
std::vector<int64_t> neuron_elements(const Shape& matrix, bool neurons_are_columns, int64_t n) {
  std::vector<int64_t> at;
  const int64_t rows = matrix[0], cols = matrix[1];
  if (neurons_are_columns)
    for (int64_t r = 0; r < rows; ++r) at.push_back(r * cols + n);
  else
    for (int64_t c = 0; c < cols; ++c) at.push_back(n * cols + c);
  return at;
}

void mean_std(const float* values, const std::vector<int64_t>& at, double& mean, double& std) {
  double sum = 0, squares = 0;
  for (int64_t i : at) sum += values[i];
  mean = sum / static_cast<double>(at.size());
  for (int64_t i : at) squares += (values[i] - mean) * (values[i] - mean);
  std = std::sqrt(squares / static_cast<double>(at.size()));
}

// Drop-Upcycling or noise on one expert's matrix (a [F,D] or [D,F] view), neurons as given.
void perturb(float* matrix, const Shape& shape, bool columns, const std::vector<int64_t>& neurons,
             const UpcycleOptions& options, const Philox& rng) {
  std::vector<int64_t> selected, whole(shape.numel());
  for (int64_t n : neurons)
    for (int64_t i : neuron_elements(shape, columns, n)) selected.push_back(i);
  std::iota(whole.begin(), whole.end(), 0);
  double mean = 0, std = 0;
  mean_std(matrix, options.statistics == "slice" ? selected : whole, mean, std);
  for (size_t j = 0; j < selected.size(); ++j) {
    const double z = rng.normal(j);
    float& v = matrix[selected[j]];
    v = options.method == "drop" ? static_cast<float>(mean + std * z)
                                 : static_cast<float>(v + options.noise_std * z);
  }
}

void check_options(const UpcycleOptions& o, size_t models) {
  MOE_CHECK(o.method == "copy" || o.method == "granular" || o.method == "drop" ||
                o.method == "noise" || o.method == "btx",
            "upcycling method '", o.method, "' is not one of copy, granular, drop, noise, btx");
  MOE_CHECK(o.ratio >= 0 && o.ratio <= 1, "the upcycling ratio must be within [0, 1], got ",
            o.ratio);
  MOE_CHECK(o.index_mode == "shared" || o.index_mode == "per_matrix", "index mode '", o.index_mode,
            "' is not one of shared, per_matrix");
  MOE_CHECK(o.statistics == "matrix" || o.statistics == "slice", "statistics '", o.statistics,
            "' is not one of matrix, slice");
  MOE_CHECK(o.router_std >= 0 && o.noise_std >= 0, "router_std and noise_std must be >= 0");
  MOE_CHECK(o.method == "btx" ? models >= 2 : models == 1, "method ", o.method, " takes ",
            o.method == "btx" ? "two or more dense checkpoints" : "one dense checkpoint", ", got ",
            models);
}

// A dense checkpoint, loaded whole on this process.
struct Dense {
  std::string dir;
  Config config;
  ParameterStore store{DType::f32};
  std::unique_ptr<Model> model;
  std::vector<std::string> used;

  explicit Dense(const std::string& d) : dir(d) {
    MOE_CHECK(is_committed(dir), "'", dir, "' is not a committed checkpoint");
    config = parse_config(checkpoint_config(dir), "the config in " + dir);
    MOE_CHECK(config.moe.first_k_dense >= config.model.n_layers, "'", dir,
              "' is not a dense model (it has MoE layers); upcycling starts from a dense one");
    model = std::make_unique<Model>(config.model, config.moe, store);
    store.allocate(0);
    load_checkpoint(dir, {&store, false, {}}, {});
  }

  // The values of `name`, which must have `shape`; `target` and `hint` word the error.
  const float* take(const std::string& name, const Shape& shape, const std::string& target,
                    const char* hint) {
    const Parameter* source = nullptr;
    for (const Parameter& p : store.parameters())
      if (p.name == name) source = &p;
    MOE_CHECK(source, "the dense checkpoint ", dir, " has no tensor '", name, "' for ", target,
              ": it is a different architecture from the MoE config");
    MOE_CHECK(source->shape == shape, "dense tensor '", name, "' has shape ", source->shape.str(),
              " but ", target, " needs ", shape.str(), hint);
    used.push_back(name);
    return source->value.data<float>();
  }
};

}  // namespace

std::string upcycle(const std::vector<std::string>& dense_dirs, const Config& moe_config,
                    const UpcycleOptions& options, const std::string& output) {
  check_options(options, dense_dirs.size());
  std::vector<std::unique_ptr<Dense>> dense;
  for (const std::string& dir : dense_dirs) dense.push_back(std::make_unique<Dense>(dir));
  const auto models = static_cast<int64_t>(dense.size());
  const int64_t experts = moe_config.moe.num_experts, hidden = moe_config.moe.expert_hidden;
  const int64_t dense_hidden = dense.front()->config.model.ffn_hidden;
  const bool granular = options.method == "granular";
  // Granular: G slices of the dense FFN, each expert e takes slice e mod G (METHODS.md §6).
  const int64_t groups = granular ? dense_hidden / hidden : 1;
  MOE_CHECK(!granular || (dense_hidden % hidden == 0 && experts % groups == 0),
            "granular upcycling needs moe.expert_hidden = ", hidden,
            " to divide the dense ffn_hidden = ", dense_hidden, " and the granularity ",
            dense_hidden / std::max<int64_t>(hidden, 1), " to divide moe.num_experts = ", experts);
  MOE_CHECK(options.method != "btx" || experts % models == 0,
            "btx makes moe.num_experts = ", experts, " experts from ", models,
            " dense models; it must be a multiple");
  const double activation_scale =
      moe_config.moe.renormalize
          ? static_cast<double>(groups)
          : static_cast<double>(experts) * groups / moe_config.moe.top_k;  // R G G / k
  const auto scale = static_cast<float>(std::cbrt(activation_scale));      // SwiGLU: a^(1/3)
  MOE_CHECK(granular || hidden == dense_hidden, "method ", options.method,
            " makes each expert a whole dense FFN: moe.expert_hidden = ", hidden,
            " must equal the dense ffn_hidden = ", dense_hidden, " (granular splits it)");
  const char* expert_hint = " (the dense models differ)";

  ParameterStore store(DType::f32);
  const Model model(moe_config.model, moe_config.moe, store);
  store.allocate(static_cast<uint64_t>(moe_config.train.seed));
  for (Parameter& p : store.parameters()) {
    float* to = p.value.data<float>();
    if (contains(p.name, kExperts)) {
      const bool down = contains(p.name, ".w_down");
      const Shape dense_shape =
          down ? Shape{p.shape[1], dense_hidden} : Shape{dense_hidden, p.shape[2]};
      const int64_t size = p.shape[1] * p.shape[2];
      for (int64_t e = 0; e < experts; ++e) {
        Dense& source = *dense[options.method == "btx" ? e * models / experts : 0];
        const float* from =
            source.take(dense_source(p.name, kExperts), dense_shape, p.name, expert_hint);
        const int64_t block = e % groups;
        float* expert = to + e * size;
        if (down)
          for (int64_t r = 0; r < p.shape[1]; ++r)
            for (int64_t c = 0; c < hidden; ++c)
              expert[r * hidden + c] =
                  from[r * dense_hidden + block * hidden + c] * (granular ? scale : 1.0f);
        else
          for (int64_t i = 0; i < size; ++i)
            expert[i] = from[block * size + i] * (granular ? scale : 1.0f);
      }
    } else if (contains(p.name, ".moe.router.gate.")) {
      // Granular: experts gG .. gG+G-1 share router row g.
      const Philox rng(options.seed, stream_id("upcycle.router." + p.name));
      const double half_width = options.router_std * std::sqrt(3.0);
      const int64_t width = p.shape[1];
      for (int64_t e = 0; e < experts; ++e)
        for (int64_t d = 0; d < width; ++d)
          to[e * width + d] =
              static_cast<float>((2.0 * rng.uniform((e / groups) * width + d) - 1.0) * half_width);
    } else if (contains(p.name, ".moe.shared_experts.") && !options.shared_from_dense) {
      continue;  // the usual random init
    } else if (!contains(p.name, ".moe.shared_expert_gate.")) {
      // Copied, or with several dense models their element-wise mean.
      const std::string name = contains(p.name, ".moe.shared_experts.")
                                   ? dense_source(p.name, ".moe.shared_experts.")
                                   : p.name;
      std::fill(to, to + p.shape.numel(), 0.0f);
      for (auto& source : dense) {
        const float* from = source->take(name, p.shape, p.name, " (a different architecture)");
        for (int64_t i = 0; i < p.shape.numel(); ++i) to[i] += from[i] / static_cast<float>(models);
      }
    }
  }
  for (const auto& source : dense)
    for (const Parameter& p : source->store.parameters())
      MOE_CHECK(std::find(source->used.begin(), source->used.end(), p.name) != source->used.end(),
                "dense tensor '", p.name, "' of ", source->dir,
                " has no place in the MoE model: it is a different architecture");

  if (options.method == "drop" || options.method == "noise") {
    // Per layer and expert: the neuron sets, then each of w_gate, w_up (rows), w_down (columns).
    for (int layer = 0; layer < moe_config.model.n_layers; ++layer) {
      if (!moe_config.moe.is_moe_layer(layer)) continue;
      const std::string prefix = "layers." + std::to_string(layer) + ".moe.experts.";
      for (int64_t e = 0; e < moe_config.moe.num_experts; ++e) {
        const std::string expert = prefix + std::to_string(e);
        const int64_t neurons = moe_config.moe.expert_hidden;
        const std::vector<int64_t> shared =
            pick(neurons, options.ratio, Philox(options.seed, stream_id(expert + ".neurons")));
        for (const char* matrix : {"w_gate", "w_up", "w_down"}) {
          Parameter& p = store.find(prefix + matrix);
          const Shape shape{p.shape[1], p.shape[2]};
          const std::vector<int64_t> neurons_here =
              options.index_mode == "shared"
                  ? shared
                  : pick(neurons, options.ratio,
                         Philox(options.seed, stream_id(expert + "." + matrix + ".neurons")));
          perturb(p.value.data<float>() + e * shape.numel(), shape, std::string(matrix) == "w_down",
                  neurons_here, options,
                  Philox(options.seed, stream_id(expert + "." + matrix + ".values")));
        }
      }
    }
  }
  CheckpointMeta meta;
  meta.seed = moe_config.train.seed;
  meta.config_yaml = to_yaml(moe_config);
  return save_checkpoint(output, {&store, false, {}}, meta, {});
}

}  // namespace moe
