#include "checkpoint/hf_convert.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "checkpoint/checkpoint.h"
#include "checkpoint/hf_model.h"
#include "checkpoint/hf_rope_rows.h"
#include "checkpoint/safetensors.h"
#include "config/yaml_io.h"
#include "formats/json.h"
#include "layers/model.h"

namespace moe {

namespace fs = std::filesystem;

namespace {

// The safetensors files of an HF model directory: the index's, or model.safetensors.
std::vector<std::string> safetensors_files(const std::string& dir) {
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (!fs::exists(index)) {
    const fs::path single = fs::path(dir) / "model.safetensors";
    MOE_CHECK(fs::exists(single), "'", dir,
              "' has neither model.safetensors nor model.safetensors.index.json");
    return {single.string()};
  }
  const JsonValue document = read_json_file(index.string());
  const JsonNode root(document, index.string(), "index");
  std::set<std::string> files;
  const JsonNode map = root.at("weight_map");
  for (const auto& [name, value] : map.as_object())
    files.insert((fs::path(dir) / map.member(value, name).as_string()).string());
  return {files.begin(), files.end()};
}

// The model a config describes, declared but not allocated: global names and shapes only.
struct Declared {
  Config config;
  ParameterStore store{DType::f32};
  std::unique_ptr<Model> model;
  explicit Declared(const Config& c) : config(c) {
    model = std::make_unique<Model>(config.model, config.moe, store);
  }
};

// Where an HF tensor lands in the checkpoint: its entry (model/<parameter> or buffers/<buffer>)
// whole, or one expert's slice of the stacked [E, ., .] weight (a block [1, ., .] at [e, 0, 0]).
struct Place {
  std::string entry;
  Shape global, hf_shape, block_shape;
  std::vector<int64_t> offset;
};

Place place(const ParameterStore& store, const HfTensor& t) {
  for (const Buffer& b : store.buffers())
    if (b.name == t.parameter)
      return {"buffers/" + b.name, b.value.shape(), b.value.shape(), b.value.shape(),
              std::vector<int64_t>(b.value.ndim(), 0)};
  const Shape& global = store.find(t.parameter).global_shape;
  std::vector<int64_t> offset(global.ndim(), 0);
  if (t.expert < 0) return {"model/" + t.parameter, global, global, global, offset};
  offset[0] = t.expert;
  return {"model/" + t.parameter, global, Shape{global[1], global[2]},
          Shape{1, global[1], global[2]}, offset};
}

// A matrix's RoPE rows from the file's order to MoEForge's (to_interleaved false) or back.
void reorder(Tensor& block, const Shape& hf_shape, const RopeRows& rope, bool to_interleaved) {
  if (rope.dim > 0)
    reorder_rope_rows(block.data<float>(), hf_shape[0], hf_shape[1], rope, to_interleaved);
}

// Whether the files hold a tensor of model.layers.i.
bool holds_layer(const std::vector<std::string>& files, int i) {
  const std::string prefix = "model.layers." + std::to_string(i) + ".";
  for (const std::string& path : files) {
    const SafetensorsFile file(path);
    for (const SafetensorsTensor& t : file.tensors())
      if (t.name.starts_with(prefix)) return true;
  }
  return false;
}

// Where a tensor was read: its file and its name there.
struct Stored {
  std::string file, name;
};

// An MTP layer's copy of the embedding or the LM head holds the original's bytes.
void check_copy(const Stored& copy, const Stored& original) {
  const SafetensorsFile a(copy.file), b(original.file);
  const SafetensorsTensor &x = a.at(copy.name), &y = b.at(original.name);
  MOE_CHECK(x.dtype == y.dtype && x.size == y.size &&
                std::memcmp(a.data(x), b.data(y), static_cast<size_t>(x.size)) == 0,
            copy.file, ": tensor '", copy.name, "' differs from '", original.name,
            "': a multi-token prediction layer shares the main model's embedding and LM head, so "
            "its copy must equal the original bit for bit (MoEForge keeps one)");
  a.release(x);
  b.release(y);
}

// Adds an expert's matrix (one tensor of hf_tensors()) to its expert's checksum.
void add_expert_checksum(const HfTensor& t, const Tensor& block, const Shape& hf_shape,
                         std::map<std::string, uint64_t>& sums) {
  if (t.expert < 0) return;
  sums[t.parameter.substr(0, t.parameter.find(".experts.")) + " expert " +
       std::to_string(t.expert)] += block_checksum(block.view(hf_shape), hf_shape, {0, 0});
}

void print_expert_checksums(const std::map<std::string, uint64_t>& sums) {
  for (const auto& [expert, sum] : sums)
    std::printf("  %s checksum %016llx\n", expert.c_str(), static_cast<unsigned long long>(sum));
}

}  // namespace

std::string hf_to_moeforge(const std::string& input, const std::string& output) {
  const std::string config_path = (fs::path(input) / "config.json").string();
  HfImport hf = config_from_hf(config_path);
  const std::vector<std::string> files = safetensors_files(input);
  ModelConfig& m = hf.config.model;
  if (m.mtp_depth > 0 && !holds_layer(files, m.n_layers)) {
    hf.notes.push_back("num_nextn_predict_layers = " + std::to_string(m.mtp_depth) +
                       ", but no tensor of model.layers." + std::to_string(m.n_layers) +
                       ".* is in the files (transformers saves DeepSeek-V3 so): imported "
                       "without multi-token prediction (model.mtp_depth 0)");
    m.mtp_depth = 0;
  }
  hf.config.validate(config_path);  // zero heads, bad ratios: a clear error before any shape math
  for (const std::string& note : hf.notes) std::printf("note: %s\n", note.c_str());
  Declared target(hf.config);
  std::map<std::string, HfTensor> wanted;
  for (const HfTensor& t : hf_tensors(hf.config, hf.model_type)) wanted[t.hf_name] = t;
  int64_t bytes = 0;
  for (const Parameter& p : target.store.parameters()) bytes += p.global_shape.numel() * 4;
  for (const Buffer& b : target.store.buffers()) bytes += b.value.numel() * 4;

  CheckpointMeta meta;
  meta.seed = hf.config.train.seed;
  meta.config_yaml = to_yaml(hf.config);
  StreamingCheckpoint checkpoint(output, meta, bytes);
  for (const Parameter& p : target.store.parameters())
    checkpoint.add_tensor("model/" + p.name, DType::f32, p.global_shape);
  for (const Buffer& b : target.store.buffers())
    checkpoint.add_tensor("buffers/" + b.name, DType::f32, b.value.shape());
  std::map<std::string, HfFusedTensor> fused;
  for (const HfFusedTensor& t : hf_fused_tensors(hf.config, hf.model_type)) fused[t.hf_name] = t;
  std::set<std::string> done;
  std::vector<std::string> unknown;
  std::map<std::string, uint64_t> expert_sums;
  std::map<std::string, Stored> stored;  // by hf_tensors() name, but the fused ones'
  // Writes `block`, the values of `name` (of hf_tensors()), into its place.
  auto put = [&](const std::string& source, const std::string& name, Tensor& block) {
    MOE_CHECK(!done.count(name), source, ": tensor '", name, "' appears twice in the model");
    const HfTensor& to = wanted.at(name);
    const Place at = place(target.store, to);
    if (hf.rope_interleaved) reorder(block, at.hf_shape, to.rope, false);
    checkpoint.write(at.entry, block, at.offset);
    add_expert_checksum(to, block, at.hf_shape, expert_sums);
    done.insert(name);
  };
  int64_t read = 0;
  for (const std::string& path : files) {
    const SafetensorsFile file(path);
    for (const SafetensorsTensor& t : file.tensors()) {
      const std::string name = hf_canonical_name(t.name, hf.model_type);
      if (const auto it = fused.find(name); it != fused.end()) {
        const HfFusedTensor& f = it->second;
        MOE_CHECK(t.shape == f.shape, path, ": tensor '", t.name, "' has shape ",
                  Shape(t.shape).str(), ", but config.json makes it ", Shape(f.shape).str(),
                  " (transformers' fused experts: gate_up_proj [experts, 2 * expert hidden, "
                  "hidden], down_proj [experts, hidden, expert hidden])");
        std::vector<float> values(t.numel);
        file.read_f32(t, values.data());
        file.release(t);
        const int64_t part = t.numel / static_cast<int64_t>(f.parts.size());
        for (size_t k = 0; k < f.parts.size(); ++k) {
          const HfTensor& to = wanted.at(f.parts[k]);
          Tensor block = Tensor::empty(place(target.store, to).block_shape, DType::f32);
          MOE_ASSERT(block.numel() == part, "the parts of ", name, " do not tile it");
          std::copy_n(values.data() + k * part, part, block.data<float>());
          put(path + " ('" + t.name + "')", f.parts[k], block);
        }
        ++read;
        continue;
      }
      const auto it = wanted.find(name);
      if (it == wanted.end()) {
        unknown.push_back(t.name);
        continue;
      }
      const HfTensor& to = it->second;
      const Place at = place(target.store, to);
      MOE_CHECK(Shape(t.shape) == at.hf_shape, path, ": tensor '", t.name, "' has shape ",
                Shape(t.shape).str(), ", but config.json makes ", to.parameter,
                to.expert >= 0 ? " (one expert of it)" : "", " ", at.hf_shape.str());
      stored[name] = {path, t.name};
      ++read;
      if (!to.copy_of.empty()) continue;  // compared with the original below
      Tensor block = Tensor::empty(at.block_shape, DType::f32);
      file.read_f32(t, block.data<float>());
      file.release(t);
      put(path, name, block);
    }
  }
  MOE_CHECK(unknown.empty(), input, ": ", unknown.size(), " tensor(s) not consumed, first '",
            unknown.empty() ? "" : unknown.front(),
            "': the model has parts this conversion does not know; nothing was written");
  for (const auto& [name, t] : wanted) {
    if (done.count(name) || !t.copy_of.empty()) continue;
    std::string holder;
    for (const auto& [fused_name, f] : fused)
      if (std::find(f.parts.begin(), f.parts.end(), name) != f.parts.end())
        holder = ", or the fused '" + fused_name + "' that holds it";
    MOE_CHECK(false, input, ": tensor '", name, "' is missing (config.json says the ",
              hf.model_type, " model has it", holder, ")");
  }
  for (const auto& [name, t] : wanted)
    if (!t.copy_of.empty() && stored.count(name)) check_copy(stored.at(name), stored.at(t.copy_of));
  const std::string dir = checkpoint.commit();
  std::ofstream((fs::path(output) / "config.yaml").string()) << to_yaml(hf.config);
  std::printf("hf-to-moeforge: %s (%s) -> %s\n  %lld tensors read, %zu parameters written\n",
              input.c_str(), hf.model_type.c_str(), dir.c_str(), static_cast<long long>(read),
              target.store.parameters().size());
  print_expert_checksums(expert_sums);
  return dir;
}

void moeforge_to_hf(const std::string& input, const std::string& output, std::string type,
                    const std::string& dtype, int64_t max_shard_bytes) {
  MOE_CHECK(is_committed(input), "'", input, "' is not a committed checkpoint");
  const std::string state = (fs::path(input) / "state.h5").string();
  h5::Handle file = h5::open_file(state, MPI_COMM_NULL);
  const Config config = parse_config(h5::read_string_attribute(file.get(), "config", state),
                                     "the config in " + input);
  if (type.empty()) type = default_hf_model_type(config);
  const std::string torch_dtype = dtype == "bf16"  ? "bfloat16"
                                  : dtype == "f16" ? "float16"
                                                   : "float32";
  const std::string config_json = hf_config_json(config, type, torch_dtype);
  Declared source(config);
  const std::string st_dtype = dtype == "bf16" ? "BF16" : dtype == "f16" ? "F16" : "F32";

  // Shards: consecutive tensors until max_shard_bytes.
  const std::vector<HfTensor> list = hf_tensors(config, type);
  std::vector<std::vector<size_t>> shards(1);
  int64_t in_shard = 0, total = 0;
  std::vector<Shape> shapes;
  auto dtype_of = [&](const HfTensor& t) { return t.keep_f32 ? std::string("F32") : st_dtype; };
  for (size_t i = 0; i < list.size(); ++i) {
    shapes.push_back(place(source.store, list[i]).hf_shape);
    const int64_t size = shapes.back().numel() * (dtype_of(list[i]) == "F32" ? 4 : 2);
    if (in_shard > 0 && in_shard + size > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(i);
    in_shard += size;
    total += size;
  }
  fs::create_directories(output);
  std::string weight_map;
  std::map<std::string, uint64_t> expert_sums;
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    const std::string file_name = shards.size() == 1 ? "model.safetensors" : name;
    std::vector<SafetensorsSpec> declared;
    for (size_t i : shards[s]) {
      std::vector<int64_t> dims;
      for (int d = 0; d < shapes[i].ndim(); ++d) dims.push_back(shapes[i][d]);
      declared.push_back({list[i].hf_name, dtype_of(list[i]), dims});
    }
    SafetensorsWriter writer((fs::path(output) / file_name).string(), declared, {{"format", "pt"}});
    for (size_t i : shards[s]) {
      const Place at = place(source.store, list[i]);
      h5::Handle dataset = h5::open_dataset(file.get(), at.entry, state);
      MOE_CHECK(h5::dataset_shape(dataset.get(), at.entry) == at.global, state, ": ", at.entry,
                " does not have the shape its config gives");
      Tensor block = Tensor::empty(at.block_shape, DType::f32);
      h5::read_block(dataset.get(), at.entry, block, at.offset);
      add_expert_checksum(list[i], block, at.hf_shape, expert_sums);
      reorder(block, at.hf_shape, list[i].rope, true);  // DeepSeek's weights pair RoPE rows
      const std::vector<std::byte> bytes =
          encode(block.data<float>(), block.numel(), dtype_of(list[i]));
      writer.write(list[i].hf_name, bytes.data(), bytes.size());
      weight_map += std::string(weight_map.empty() ? "" : ",\n") + "    \"" + list[i].hf_name +
                    "\": \"" + file_name + "\"";
    }
    writer.finish();
  }
  if (shards.size() > 1)
    std::ofstream((fs::path(output) / "model.safetensors.index.json").string())
        << "{\n  \"metadata\": {\"total_size\": " << total << "},\n  \"weight_map\": {\n"
        << weight_map << "\n  }\n}\n";
  std::ofstream((fs::path(output) / "config.json").string()) << config_json;
  std::printf("moeforge-to-hf: %s -> %s (%s, %s, %zu file(s))\n  %zu tensors written\n",
              input.c_str(), output.c_str(), type.c_str(), st_dtype.c_str(), shards.size(),
              list.size());
  print_expert_checksums(expert_sums);
}

}  // namespace moe
