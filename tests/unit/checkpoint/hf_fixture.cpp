#include "tests/unit/checkpoint/hf_fixture.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/hf_convert.h"
#include "checkpoint/hf_model.h"
#include "checkpoint/safetensors.h"
#include "layers/model.h"
#include "tests/support/tolerance.h"

namespace moe::testing {

namespace fs = std::filesystem;

const std::string& hf_fixtures() {
  static const std::string dir = MOE_HF_FIXTURES;
  return dir;
}

std::string temp_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "moe_hf_" + name;
  fs::remove_all(dir);
  return dir;
}

void expect_same_tensors(const std::string& source, const std::string& exported) {
  // name -> the original file holding it and its entry there
  std::map<std::string, std::pair<const SafetensorsFile*, const SafetensorsTensor*>> originals;
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  for (const auto& entry : fs::directory_iterator(source))
    if (entry.path().extension() == ".safetensors" &&
        entry.path().filename() != "reference.safetensors") {
      files.push_back(std::make_unique<SafetensorsFile>(entry.path().string()));
      for (const SafetensorsTensor& t : files.back()->tensors())
        originals[t.name] = {files.back().get(), &t};
    }
  const SafetensorsFile copy(exported + "/model.safetensors");
  EXPECT_EQ(copy.tensors().size(), originals.size());
  for (const SafetensorsTensor& t : copy.tensors()) {
    ASSERT_TRUE(originals.count(t.name)) << t.name << " is not in the original";
    const auto [owner, original] = originals[t.name];
    const SafetensorsTensor& o = *original;
    EXPECT_EQ(t.shape, o.shape) << t.name;
    EXPECT_EQ(t.dtype, o.dtype) << t.name;
    ASSERT_EQ(t.size, o.size) << t.name;
    EXPECT_EQ(std::memcmp(copy.data(t), owner->data(o), t.size), 0) << t.name << " differs";
  }
}

std::string edited_fixture(const std::string& name, const std::string& from, const std::string& to,
                           const std::string& drop,
                           const std::map<std::string, NewTensor>& replaced) {
  const std::string dir = temp_dir(name + "_edited");
  fs::create_directories(dir);
  std::ifstream in(hf_fixtures() + "/" + name + "/config.json");
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t at = config.find(from);
  EXPECT_NE(at, std::string::npos) << from << " is not in " << name << "/config.json";
  if (at != std::string::npos) config.replace(at, from.size(), to);
  std::ofstream(dir + "/config.json") << config;

  const SafetensorsFile original(hf_fixtures() + "/" + name + "/model.safetensors");
  std::vector<const SafetensorsTensor*> kept;
  std::vector<SafetensorsSpec> specs;
  for (const SafetensorsTensor& t : original.tensors())
    if (drop.empty() || !t.name.ends_with(drop)) {
      kept.push_back(&t);
      const auto it = replaced.find(t.name);
      specs.push_back(it == replaced.end() ? SafetensorsSpec{t.name, t.dtype, t.shape}
                                           : SafetensorsSpec{t.name, "F32", it->second.shape});
    }
  SafetensorsWriter writer(dir + "/model.safetensors", specs);
  for (const SafetensorsTensor* t : kept) {
    const auto it = replaced.find(t->name);
    if (it == replaced.end())
      writer.write(t->name, original.data(*t), static_cast<size_t>(t->size));
    else
      writer.write(t->name, it->second.values.data(), it->second.values.size() * sizeof(float));
  }
  writer.finish();
  return dir;
}

namespace {

// The forward of the model imported from `source` on fixture `name`'s reference input, whose
// targets are the next token in each row (the last one ignored) or, without next_tokens, all
// ignored.
ModelOutput imported_forward(const std::string& source, const std::string& name, bool next_tokens) {
  const std::string step = hf_to_moeforge(source, temp_dir(name + "_import"));
  const HfImport hf = config_from_hf(source + "/config.json");
  ParameterStore store(DType::f32);
  Model model(hf.config.model, hf.config.moe, store);
  store.allocate(0);
  load_checkpoint(step, {&store, false, {}}, {});

  const SafetensorsFile reference(hf_fixtures() + "/" + name + "/reference.safetensors");
  const SafetensorsTensor& ids = reference.at("input_ids");
  const int64_t batch = ids.shape[0], length = ids.shape[1];
  std::vector<int32_t> tokens(batch * length);
  std::memcpy(tokens.data(), reference.data(ids), tokens.size() * sizeof(int32_t));
  std::vector<int32_t> targets(tokens.size(), Model::ignore_index);
  if (next_tokens)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t + 1 < length; ++t) targets[b * length + t] = tokens[b * length + t + 1];
  Stream stream;
  return model.forward(Tensor::from_vector<int32_t>({batch, length}, tokens),
                       Tensor::from_vector<int32_t>({batch, length}, targets), false, stream);
}

}  // namespace

Logits imported_logits(const std::string& source, const std::string& name) {
  const SafetensorsFile reference(hf_fixtures() + "/" + name + "/reference.safetensors");
  const SafetensorsTensor& logits = reference.at("logits");
  Tensor expected = Tensor::empty({logits.shape[0] * logits.shape[1], logits.shape[2]}, DType::f32);
  reference.read_f32(logits, expected.data<float>());
  return {imported_forward(source, name, false).logits, expected};
}

MtpLoss imported_mtp_loss(const std::string& source, const std::string& name) {
  const SafetensorsFile reference(hf_fixtures() + "/" + name + "/reference.safetensors");
  float expected = 0;
  reference.read_f32(reference.at("mtp_loss"), &expected);
  return {imported_forward(source, name, true).mtp_loss, expected};
}

::testing::AssertionResult matches_reference(const Logits& logits) {
  return all_close(logits.got, logits.expected, 2e-4, 1e-4);
}

}  // namespace moe::testing
