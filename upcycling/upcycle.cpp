#include "upcycling/upcycle.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "checkpoint/checkpoint.h"
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

void check_options(const UpcycleOptions& o) {
  MOE_CHECK(o.method == "copy" || o.method == "drop" || o.method == "noise", "upcycling method '",
            o.method, "' is not one of copy, drop, noise");
  MOE_CHECK(o.ratio >= 0 && o.ratio <= 1, "the upcycling ratio must be within [0, 1], got ",
            o.ratio);
  MOE_CHECK(o.index_mode == "shared" || o.index_mode == "per_matrix", "index mode '", o.index_mode,
            "' is not one of shared, per_matrix");
  MOE_CHECK(o.statistics == "matrix" || o.statistics == "slice", "statistics '", o.statistics,
            "' is not one of matrix, slice");
  MOE_CHECK(o.router_std >= 0 && o.noise_std >= 0, "router_std and noise_std must be >= 0");
}

}  // namespace

std::string upcycle(const std::string& dense_dir, const Config& moe_config,
                    const UpcycleOptions& options, const std::string& output) {
  check_options(options);
  MOE_CHECK(is_committed(dense_dir), "'", dense_dir, "' is not a committed checkpoint");
  std::string dense_yaml;
  {
    h5::Handle file = h5::open_file(dense_dir + "/state.h5", MPI_COMM_NULL);
    dense_yaml = h5::read_string_attribute(file.get(), "config", dense_dir);
  }
  const Config dense = parse_config(dense_yaml, "the config in " + dense_dir);
  MOE_CHECK(dense.moe.first_k_dense >= dense.model.n_layers, "'", dense_dir,
            "' is not a dense model (it has MoE layers); upcycling starts from a dense one");
  ParameterStore dense_store(DType::f32);
  const Model dense_model(dense, dense_store);
  dense_store.allocate(0);
  load_checkpoint(dense_dir, {&dense_store, false, {}}, {});

  ParameterStore store(DType::f32);
  const Model model(moe_config, store);
  store.allocate(static_cast<uint64_t>(moe_config.train.seed));
  std::vector<std::string> used;
  auto take = [&](const std::string& name, const Shape& shape, const std::string& target) {
    const Parameter* source = nullptr;
    for (const Parameter& p : dense_store.parameters())
      if (p.name == name) source = &p;
    MOE_CHECK(source, "the dense checkpoint has no tensor '", name, "' for ", target,
              ": it is a different architecture from the MoE config");
    MOE_CHECK(source->shape == shape, "dense tensor '", name, "' has shape ", source->shape.str(),
              " but ", target, " needs ", shape.str(),
              contains(target, kExperts)
                  ? " (copy, drop and noise need moe.expert_hidden = the dense ffn_hidden)"
                  : " (a different architecture)");
    used.push_back(name);
    return source->value.data<float>();
  };
  for (Parameter& p : store.parameters()) {
    float* to = p.value.data<float>();
    if (contains(p.name, kExperts)) {
      const Shape expert{p.shape[1], p.shape[2]};
      const float* from = take(dense_source(p.name, kExperts), expert, p.name);
      for (int64_t e = 0; e < p.shape[0]; ++e)
        std::copy(from, from + expert.numel(), to + e * expert.numel());
    } else if (contains(p.name, ".moe.router.gate.")) {
      const Philox rng(options.seed, stream_id("upcycle.router." + p.name));
      const double half_width = options.router_std * std::sqrt(3.0);
      for (int64_t i = 0; i < p.shape.numel(); ++i)
        to[i] = static_cast<float>((2.0 * rng.uniform(i) - 1.0) * half_width);
    } else if (contains(p.name, ".moe.shared_experts.")) {
      if (options.shared_from_dense) {
        const float* from = take(dense_source(p.name, ".moe.shared_experts."), p.shape, p.name);
        std::copy(from, from + p.shape.numel(), to);
      }
    } else if (!contains(p.name, ".moe.shared_expert_gate.")) {
      const float* from = take(p.name, p.shape, p.name);
      std::copy(from, from + p.shape.numel(), to);
    }
  }
  for (const Parameter& p : dense_store.parameters())
    MOE_CHECK(std::find(used.begin(), used.end(), p.name) != used.end(), "dense tensor '", p.name,
              "' has no place in the MoE model: it is a different architecture");

  if (options.method != "copy") {
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
