// Run configuration: defaults, the shipped configs, every kind of error message (checked for the
// key, value, source and what is allowed, not only the exception type), --set overrides, print ->
// parse round trips, every shipped config loading and round-tripping, the YAML words of every
// enum key, and that docs/config.md lists every key.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "config/keys.h"
#include "config/run_config.h"
#include "config/yaml_io.h"
#include "core/error.h"

namespace moe {
namespace {

const std::filesystem::path repo_root = MOE_SOURCE_ROOT;

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE((text).find(part), std::string::npos) << "missing \"" << (part) << "\" in: " << (text)

// The message of the InputError that parsing `yaml` (as run.yaml) with `overrides` throws.
std::string parse_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "run.yaml", overrides);
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError for:\n" << yaml;
  return "";
}

std::string validate_error(const Config& config) {
  try {
    config.validate();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "validate() accepted the config";
  return "";
}

TEST(Config, DefaultsValidateAndAnEmptyFileGivesThem) {
  EXPECT_NO_THROW(Config{}.validate());
  EXPECT_EQ(parse_config("", "empty.yaml"), Config{});
  EXPECT_EQ(parse_config("model:\ntrain: {}\n", "empty_sections.yaml"), Config{});
}

// Saved configs of earlier checkpoints say parallel.fssdp (always false: it was refused); they
// still load, and true would mean experts: fssdp. A new --set of the old key is an unknown key.
TEST(Config, LegacyFssdpFlagOfSavedConfigsStillLoads) {
  EXPECT_EQ(parse_config("parallel:\n  fssdp: false\n  ep: 2\n", "saved").parallel.experts,
            ExpertPlacement::ep);
  EXPECT_EQ(parse_config("parallel:\n  fssdp: true\n", "saved").parallel.experts,
            ExpertPlacement::fssdp);
  EXPECT_THROW(parse_config("", "run.yaml", {"parallel.fssdp=true"}), InputError);
}

TEST(Config, QuickstartParses) {
  const Config c = load_config((repo_root / "configs/quickstart.yaml").string());
  EXPECT_EQ(c.model.n_layers, 4);
  EXPECT_EQ(c.model.d_model, 128);
  EXPECT_EQ(c.moe.num_experts, 8);
  EXPECT_EQ(c.moe.top_k, 2);
  EXPECT_EQ(c.data.seq_len, 128);
  EXPECT_EQ(c.data.train,
            "corpora/bible_train 0.6, corpora/austen_train 0.2, corpora/code_train 0.2");
  EXPECT_EQ(c.train.device, DeviceType::cpu);
}

// Every YAML file under configs/ (recipes users copy) loads, and prints back to the same config.
TEST(Config, EveryShippedConfigLoadsAndRoundTrips) {
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(repo_root / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    const Config c = load_config(entry.path().string());
    EXPECT_EQ(parse_config(to_yaml(c), "printed"), c);
    ++files;
  }
  EXPECT_GE(files, 7);
}

// Each word of an enum key reads as the value it names and prints back as itself; other words
// are refused.
template <ConfigEnum E>
void expect_words_round_trip() {
  for (const std::string_view word : enum_words(E{})) {
    E value{};
    ASSERT_TRUE(parse_word(word, value)) << word;
    EXPECT_EQ(word_of(value), word);
  }
  E value{};
  EXPECT_FALSE(parse_word("no such word", value));
}

TEST(Config, EnumWordsRoundTrip) {
  expect_words_round_trip<ModelKind>();
  expect_words_round_trip<QkNormScope>();
  expect_words_round_trip<RouterScore>();
  expect_words_round_trip<DropPolicy>();
  expect_words_round_trip<AuxLossType>();
  expect_words_round_trip<AuxLossNorm>();
  expect_words_round_trip<ExpertPlacement>();
  expect_words_round_trip<DeviceType>();
  expect_words_round_trip<LrSchedule>();
  expect_words_round_trip<InitMethod>();
  expect_words_round_trip<LogLevel>();
  EXPECT_EQ(word_of(AuxLossNorm::switch_), "switch");
  EXPECT_EQ(allowed_words<AuxLossType>(), "micro_batch, sequence, global_batch");
}

TEST(Config, ValuesOfEveryType) {
  const Config c = parse_config(
      "model: {d_model: 064, qk_norm: True, rope_theta: 5e5}\n"
      "train: {steps: 1e3, lr: +3e-4}\n"
      "data: {train: }\n",
      "run.yaml");
  EXPECT_EQ(c.model.d_model, 64);  // decimal, not octal
  EXPECT_TRUE(c.model.qk_norm);
  EXPECT_EQ(c.model.rope_theta, 5e5);
  EXPECT_EQ(c.train.steps, 1000);
  EXPECT_EQ(c.train.lr, 3e-4);
  EXPECT_EQ(c.data.train, "");
}

TEST(Config, UnknownKeyNamesThePathAndTheNearestKey) {
  EXPECT_CONTAINS(parse_error("model:\n  n_layer: 3\n"),
                  "unknown key 'model.n_layer' in run.yaml; did you mean 'model.n_layers'?");
  EXPECT_CONTAINS(parse_error("moe:\n  experts: 4\n"), "did you mean 'moe.num_experts'?");
  EXPECT_CONTAINS(parse_error("train:\n  d_model: 64\n"),
                  "unknown key 'train.d_model' in run.yaml; did you mean 'model.d_model'?");
  EXPECT_CONTAINS(parse_error("log:\n  colour: true\n"),
                  "unknown key 'log.colour' in run.yaml; valid keys in 'log' are: interval, "
                  "metrics_file, level");
}

TEST(Config, UnknownSection) {
  EXPECT_CONTAINS(parse_error("modle:\n  d_model: 64\n"),
                  "unknown key 'modle' in run.yaml; did you mean 'model'?");
  EXPECT_CONTAINS(parse_error("optimizer: {}\n"),
                  "unknown key 'optimizer' in run.yaml; valid sections are: model, rope_scaling, "
                  "moe, parallel, "
                  "data, train, checkpoint, log, init");
}

TEST(Config, UnknownKeyIsReportedBeforeTypeErrors) {
  EXPECT_CONTAINS(parse_error("moe:\n  top_k: many\n  top_kk: 2\n"), "unknown key 'moe.top_kk'");
}

TEST(Config, DuplicateKey) {
  EXPECT_CONTAINS(parse_error("model:\n  d_model: 64\n  d_model: 96\n"),
                  "duplicate key 'model.d_model' in run.yaml");
}

TEST(Config, WrongTypeNamesKeyAndValue) {
  EXPECT_CONTAINS(parse_error("model:\n  d_model: abc\n"),
                  "wrong type for 'model.d_model' in run.yaml: expected an integer, got 'abc'");
  EXPECT_CONTAINS(parse_error("model:\n  n_layers: 2.5\n"), "expected an integer, got '2.5'");
  EXPECT_CONTAINS(parse_error("model:\n  qk_norm: yes\n"),
                  "wrong type for 'model.qk_norm' in run.yaml: expected true or false, got 'yes'");
  EXPECT_CONTAINS(parse_error("train:\n  lr: .nan\n"),
                  "'train.lr' in run.yaml: expected a finite number, got '.nan'");
  EXPECT_CONTAINS(parse_error("model:\n  d_model:\n    size: 3\n    list:\n      - 1\n"),
                  "'model.d_model' in run.yaml: expected an integer, got {size: 3, list: [1]}");
  EXPECT_CONTAINS(parse_error("data:\n  train: [a, b]\n"),
                  "'data.train' in run.yaml: expected a string, got [a, b]");
  EXPECT_CONTAINS(parse_error("model: 5\n"),
                  "wrong type for 'model' in run.yaml: expected a mapping of keys, got '5'");
  EXPECT_CONTAINS(parse_error("- model\n"),
                  "top level of run.yaml: expected a mapping of sections");
}

TEST(Config, OutOfRangeNamesTheRange) {
  EXPECT_CONTAINS(parse_error("model:\n  d_model: 0\n"),
                  "value 0 for 'model.d_model' in run.yaml is out of range: allowed >= 1");
  EXPECT_CONTAINS(parse_error("train:\n  beta2: 1.0\n"),
                  "value 1 for 'train.beta2' in run.yaml is out of range: allowed [0, 1)");
  EXPECT_CONTAINS(parse_error("model:\n  norm_eps: 0\n"),
                  "'model.norm_eps' in run.yaml is out of range: allowed > 0");
  EXPECT_CONTAINS(
      parse_error("model:\n  d_model: 3000000000\n"),
      "value 3000000000 for 'model.d_model' in run.yaml is out of range: allowed [1, 2147483647]");
  EXPECT_CONTAINS(parse_error("train:\n  seed: -1\n"),
                  "value -1 for 'train.seed' in run.yaml is out of range: allowed >= 0");
}

TEST(Config, BadChoiceListsTheChoices) {
  EXPECT_CONTAINS(parse_error("moe:\n  router_score: softmx\n"),
                  "value 'softmx' for 'moe.router_score' in run.yaml is not a valid choice: "
                  "allowed softmax, sigmoid");
  EXPECT_CONTAINS(parse_error("train:\n  schedule: cos\n"),
                  "allowed cosine, linear, constant, wsd");
  EXPECT_CONTAINS(parse_error("rope_scaling:\n  type: dynamic\n  factor: 2\n"),
                  "value 'dynamic' for 'rope_scaling.type' in run.yaml is not a valid choice: "
                  "allowed none, linear, llama3, yarn (this rope type is not implemented in "
                  "MoEForge)");
}

TEST(Config, PrecisionRefusesF16AndFp8WithTheReason) {
  EXPECT_CONTAINS(parse_error("train:\n  precision: f16\n"),
                  "value 'f16' for 'train.precision' in run.yaml is not a valid choice: allowed "
                  "f32, bf16 (f16 would need loss scaling");
  EXPECT_CONTAINS(parse_error("train:\n  precision: fp8_e4m3\n"),
                  "allowed f32, bf16 (fp8 training is not implemented)");
  EXPECT_EQ(parse_error("train:\n  precision: f64\n").find("("), std::string::npos);
  EXPECT_EQ(parse_config("train:\n  precision: bf16\n", "run.yaml", {}).train.precision,
            Precision::bf16);
}

TEST(Config, SetOverridesNestedValues) {
  const Config c = parse_config(
      "train:\n  lr: 1.0e-3\n  steps: 100\n", "run.yaml",
      {"train.lr=3e-4", "moe.top_k=4", "model.qk_norm=true", "data.train=corpus/a b.txt",
       "train.steps=50", "train.steps = 70", "checkpoint={dir: out, interval: 5}"});
  EXPECT_EQ(c.train.lr, 3e-4);
  EXPECT_EQ(c.moe.top_k, 4);
  EXPECT_TRUE(c.model.qk_norm);
  EXPECT_EQ(c.data.train, "corpus/a b.txt");
  EXPECT_EQ(c.train.steps, 70);  // the last --set of a key wins
  EXPECT_EQ(c.checkpoint.dir, "out");
  EXPECT_EQ(c.checkpoint.interval, 5);
  EXPECT_EQ(c.checkpoint.keep_last, CheckpointConfig{}.keep_last);
}

TEST(Config, SetGoesThroughTheSameChecksAndNamesTheSet) {
  EXPECT_CONTAINS(
      parse_error("", {"model.n_layer=3"}),
      "unknown key 'model.n_layer' in --set model.n_layer=3; did you mean 'model.n_layers'?");
  EXPECT_CONTAINS(parse_error("", {"trian.lr=1"}),
                  "unknown key 'trian' in --set trian.lr=1; did you mean 'train'?");
  EXPECT_CONTAINS(
      parse_error("", {"checkpoint={dri: x}"}),
      "unknown key 'checkpoint.dri' in --set checkpoint={dri: x}; did you mean 'checkpoint.dir'?");
  EXPECT_CONTAINS(
      parse_error("train:\n  steps: 10\n", {"train.steps=[1, 2]"}),
      "wrong type for 'train.steps' in --set train.steps=[1, 2]: expected an integer, got [1, 2]");
  EXPECT_CONTAINS(parse_error("model:\n  d_model: 64\n", {"model.d_model.x=1"}),
                  "wrong type for 'model.d_model' in --set model.d_model.x=1");
  EXPECT_CONTAINS(
      parse_error("", {"train.beta1=-0.5"}),
      "value -0.5 for 'train.beta1' in --set train.beta1=-0.5 is out of range: allowed [0, 1)");
  // A key the --set did not touch is still blamed on the file.
  EXPECT_CONTAINS(parse_error("model:\n  n_layer: 3\n", {"model.d_model=64"}),
                  "'model.n_layer' in run.yaml");
}

TEST(Config, MalformedSet) {
  EXPECT_CONTAINS(parse_error("", {"train.lr"}),
                  "malformed --set 'train.lr': expected key.path=value");
  EXPECT_CONTAINS(parse_error("", {"train..lr=1"}),
                  "malformed --set 'train..lr=1': the key path 'train..lr' has an empty part");
  EXPECT_CONTAINS(parse_error("", {"=1"}), "malformed --set '=1'");
  EXPECT_CONTAINS(parse_error("", {"train.lr=[1,"}),
                  "malformed --set 'train.lr=[1,': the value is not valid YAML");
}

TEST(Config, CrossFieldConstraints) {
  EXPECT_CONTAINS(parse_error("moe:\n  num_experts: 8\n  top_k: 9\n"),
                  "invalid config in run.yaml: moe.top_k = 9 is out of range: allowed [1, "
                  "moe.num_experts] = [1, 8]");
  EXPECT_CONTAINS(parse_error("", {"moe.top_k=9"}),
                  "invalid config in run.yaml with --set moe.top_k=9: moe.top_k = 9");
  EXPECT_CONTAINS(parse_error("model:\n  n_heads: 4\n  n_kv_heads: 3\n"),
                  "model.n_kv_heads = 3 must divide model.n_heads = 4");
  EXPECT_CONTAINS(parse_error("model:\n  d_model: 130\n"),
                  "model.n_heads = 4 must divide model.d_model = 130 when model.head_dim is 0");
  EXPECT_NO_THROW(parse_config("model:\n  d_model: 130\n  head_dim: 32\n", "run.yaml"));

  Config c;
  c.train.min_lr = 0.1;
  EXPECT_CONTAINS(validate_error(c),
                  "invalid config in config: train.min_lr = 0.1 exceeds train.lr = 0.003");
  c = Config{};
  c.train.warmup_steps = 300;
  EXPECT_CONTAINS(validate_error(c), "train.warmup_steps = 300 exceeds train.steps = 200");
  c = Config{};
  c.moe.first_k_dense = 5;
  EXPECT_CONTAINS(validate_error(c),
                  "moe.first_k_dense = 5 exceeds model.n_layers = 4 (the blocks)");
  c.model.mtp_depth = 1;  // a dense model with a dense prediction module
  EXPECT_NO_THROW(c.validate());
  c.moe.first_k_dense = 6;
  EXPECT_CONTAINS(validate_error(c),
                  "moe.first_k_dense = 6 exceeds model.n_layers = 4 + model.mtp_depth = 5");
  EXPECT_CONTAINS(parse_error("moe:\n  n_group: 3\n"),
                  "moe.n_group = 3 must divide moe.num_experts = 8");
  EXPECT_CONTAINS(parse_error("moe:\n  n_group: 4\n  topk_group: 5\n"),
                  "moe.topk_group = 5 is out of range: allowed [1, moe.n_group] = [1, 4]");
  EXPECT_CONTAINS(parse_error("moe:\n  n_group: 8\n  topk_group: 1\n"),
                  "moe.topk_group = 1 groups of 1 experts (moe.num_experts / moe.n_group) hold "
                  "fewer than moe.top_k = 2 experts");
  EXPECT_NO_THROW(parse_config("moe:\n  n_group: 4\n  topk_group: 2\n", "run.yaml"));
  c = Config{};
  c.model.kind = ModelKind::bts;
  c.bts.seed = "seed";
  c.bts.experts = {"expert"};
  c.train.device = DeviceType::cuda;
  EXPECT_CONTAINS(validate_error(c), "model.kind = bts trains on the CPU only for now");
  c.train.device = DeviceType::cpu;
  c.train.precision = Precision::bf16;
  EXPECT_CONTAINS(validate_error(c), "model.kind = bts trains in f32 only for now");
  c = Config{};
  c.data.seq_len = 512;
  EXPECT_CONTAINS(validate_error(c), "data.seq_len = 512 exceeds model.max_seq_len = 256");
  c = Config{};
  c.parallel.ep = 3;
  EXPECT_CONTAINS(validate_error(c), "parallel.ep = 3 must divide moe.num_experts = 8");
  c = Config{};
  c.parallel.ep = 4;
  c.parallel.dp = 2;
  EXPECT_CONTAINS(validate_error(c), "parallel.ep = 4 must divide parallel.dp = 2");
  c = Config{};
  c.parallel.tp = 3;
  EXPECT_CONTAINS(validate_error(c), "parallel.tp = 3 must divide model.n_heads = 4");
  c = Config{};
  c.parallel.experts = ExpertPlacement::fssdp;
  c.parallel.ep = 3;  // any number of experts per rank
  EXPECT_NO_THROW(c.validate());
  c.parallel.tp = 2;
  c.model.vocab_size = 258;
  EXPECT_NO_THROW(c.validate());  // each TP rank runs whole experts on its share of the tokens
  c.parallel.expert_tp = true;
  EXPECT_NO_THROW(c.validate());  // each TP rank holds its slice of the experts it holds
  c.moe.expert_hidden = 33;
  EXPECT_CONTAINS(validate_error(c), "parallel.tp = 2 must divide moe.expert_hidden = 33");
  c.moe.expert_hidden = Config{}.moe.expert_hidden;
  c.parallel.expert_tp = false;
  c.parallel.tp = 1;
  c.parallel.zero = 1;
  EXPECT_NO_THROW(c.validate());  // ZeRO-1 shards the dense moments; the experts stay with owners
  EXPECT_EQ(c.parallel.expert_ranks(8), 3);
  c.parallel.ep = 1;
  EXPECT_EQ(c.parallel.expert_ranks(8), 8);  // fssdp over all data-parallel ranks
  c.parallel.experts = ExpertPlacement::ep;
  EXPECT_EQ(c.parallel.expert_ranks(8), 1);
  c = Config{};
  c.parallel.experts = ExpertPlacement::llep;  // expert parallelism's blocks, whole experts
  c.parallel.ep = 3;
  EXPECT_CONTAINS(validate_error(c), "parallel.ep = 3 must divide moe.num_experts = 8");
  c.parallel.ep = 4;
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.parallel.expert_ranks(8), 4);
  c.parallel.tp = 2;
  c.model.vocab_size = 258;
  EXPECT_CONTAINS(validate_error(c), "parallel.experts = llep needs parallel.tp = 1 (got 2)");
  c.parallel.tp = 1;
  c.parallel.expert_tp = true;
  EXPECT_CONTAINS(validate_error(c),
                  "parallel.experts = llep moves whole experts between ranks: it does not split "
                  "them over TP (parallel.expert_tp; LLEP needs parallel.tp = 1, where it splits "
                  "nothing)");
  EXPECT_CONTAINS(parse_error("llep:\n  capacity_factor: 0.9\n"),
                  "value 0.9 for 'llep.capacity_factor' in run.yaml is out of range: allowed >= 1");
  EXPECT_CONTAINS(parse_error("fssdp:\n  inter_node_row_cost: -1\n"),
                  "value -1 for 'fssdp.inter_node_row_cost' in run.yaml is out of range: allowed "
                  ">= 0");
  EXPECT_CONTAINS(parse_error("llep:\n  min_tokens: 0\n"),
                  "value 0 for 'llep.min_tokens' in run.yaml is out of range: allowed >= 1");
  EXPECT_CONTAINS(parse_error("parallel:\n  experts: lep\n"), "ep, fssdp, llep");
  EXPECT_CONTAINS(parse_error("rope_scaling:\n  type: llama3\n"),
                  "invalid config in run.yaml: rope_scaling.type = llama3 needs "
                  "rope_scaling.factor > 0 (0 = not set)");
  EXPECT_CONTAINS(parse_error("rope_scaling:\n  type: linear\n  factor: -2\n"),
                  "value -2 for 'rope_scaling.factor' in run.yaml is out of range: allowed >= 0");
  EXPECT_CONTAINS(parse_error("rope_scaling: {factor: 8}\n"),
                  "rope_scaling.factor = 8 is set but rope_scaling.type is none");
  const std::string llama3 = "rope_scaling: {type: llama3, factor: 8, ";
  EXPECT_CONTAINS(parse_error(llama3 + "high_freq_factor: 4}\n"),
                  "rope_scaling.type = llama3 needs rope_scaling.low_freq_factor > 0");
  EXPECT_CONTAINS(parse_error(llama3 + "low_freq_factor: 4, high_freq_factor: 4}\n"),
                  "rope_scaling.high_freq_factor = 4 must exceed rope_scaling.low_freq_factor = 4");
  EXPECT_NO_THROW(parse_config(llama3 + "low_freq_factor: 1, high_freq_factor: 4}\n", "run.yaml"));
  EXPECT_CONTAINS(
      parse_error("rope_scaling: {type: yarn, factor: 4, beta_fast: 1, beta_slow: 2}\n"),
      "rope_scaling.beta_fast = 1 must exceed rope_scaling.beta_slow = 2");
  EXPECT_CONTAINS(parse_error("rope_scaling: {type: yarn, factor: 4, beta_slow: 0}\n"),
                  "value 0 for 'rope_scaling.beta_slow' in run.yaml is out of range: allowed > 0");
  c = Config{};
  c.init.method = InitMethod::drop;
  EXPECT_CONTAINS(validate_error(c), "init.method = 'drop' needs init.from");
  c.init.from = "ckpt/dense";
  EXPECT_NO_THROW(c.validate());
  c.init.method = InitMethod::scratch;
  EXPECT_CONTAINS(validate_error(c),
                  "init.method = 'scratch' does not read init.from = 'ckpt/dense'");
}

TEST(Config, ValidateChecksFieldRulesOfConfigsBuiltInCode) {
  Config c;
  c.moe.top_k = 0;
  EXPECT_CONTAINS(validate_error(c),
                  "value 0 for 'moe.top_k' in config is out of range: allowed >= 1");
  c = Config{};
  c.train.device = static_cast<DeviceType>(7);  // a value no word names
  EXPECT_CONTAINS(validate_error(c),
                  "value 7 for 'train.device' in config is not a valid choice: allowed cpu, cuda");
}

TEST(Config, PrintParseRoundTrip) {
  EXPECT_EQ(parse_config(to_yaml(Config{}), "printed.yaml"), Config{});

  Config c;
  c.model.vocab_size = 50304;
  c.model.d_model = 96;
  c.model.n_heads = 6;
  c.model.n_kv_heads = 2;
  c.model.head_dim = 32;
  c.model.norm_eps = 1e-6;
  c.model.qk_norm = true;
  c.model.tie_embeddings = false;
  c.model.init_std = 1.0 / 3.0;
  c.moe.router_score = RouterScore::sigmoid;
  c.moe.capacity_factor = 1.25;
  c.moe.routed_scaling = 2.5;
  c.moe.shared_experts = 2;
  c.moe.expert_bias = true;
  c.parallel.dp = 4;
  c.parallel.ep = 2;
  c.data.train = "a: b # not a comment";
  c.data.seed = 9007199254740993;  // not exactly representable as a double
  c.train.lr = 0.1;
  c.train.min_lr = 3e-5;
  c.train.eps = 1e-15;
  c.train.schedule = LrSchedule::wsd;
  c.checkpoint.dir = "null";
  c.checkpoint.resume = "  spaced\tand \"quoted\"\n";
  c.log.metrics_file = "true";
  c.init.method = InitMethod::noise;
  c.init.from = "123";
  c.init.noise_std = 0.01;
  c.model.rope_scaling = {.type = RopeScalingType::yarn,
                          .factor = 40,
                          .original_max_seq_len = 64,
                          .mscale = 0.707,
                          .mscale_all_dim = 1};
  ASSERT_NO_THROW(c.validate());
  const std::string printed = to_yaml(c);
  EXPECT_EQ(parse_config(printed, "printed.yaml"), c) << printed;
}

TEST(Config, PrintedConfigHasEveryKeyWithItsMeaning) {
  const std::string printed = to_yaml(Config{});
  EXPECT_CONTAINS(printed, "  d_model: 128  # model width (residual stream)\n");
  EXPECT_CONTAINS(printed, "  rope_theta: 10000.0  # RoPE base\n");
  for (const auto& key : config_keys()) {
    const std::string leaf = key.substr(key.find('.') + 1);
    EXPECT_CONTAINS(printed, "\n  " + leaf + ": ");
  }
}

TEST(Config, MissingFileNamesThePath) {
  try {
    load_config("/nonexistent/dir/run.yaml");
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_CONTAINS(
        std::string(e.what()),
        "cannot open config file '/nonexistent/dir/run.yaml': No such file or directory");
  }
  try {
    load_config((repo_root / "configs").string());
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_CONTAINS(std::string(e.what()), "configs' is a directory");
  }
}

TEST(Config, InvalidYamlNamesTheLine) {
  EXPECT_CONTAINS(parse_error("model:\n  d_model: [1,\n"), "invalid YAML in run.yaml at line");
}

TEST(Config, DerivedValues) {
  ModelConfig m;
  EXPECT_EQ(m.effective_head_dim(), 32);
  m.head_dim = 48;
  EXPECT_EQ(m.effective_head_dim(), 48);
  MoeConfig moe;
  EXPECT_EQ(moe.effective_shared_expert_hidden(), 256);
  moe.shared_expert_hidden = 64;
  EXPECT_EQ(moe.effective_shared_expert_hidden(), 64);
  moe.first_k_dense = 1;
  moe.moe_layer_freq = 2;
  EXPECT_FALSE(moe.is_moe_layer(0));
  EXPECT_FALSE(moe.is_moe_layer(1));
  EXPECT_TRUE(moe.is_moe_layer(2));
  EXPECT_FALSE(moe.is_moe_layer(3));
  EXPECT_TRUE(moe.is_moe_layer(4));
}

// Multi-head latent attention's keys come all together with model.attention: mla, and only then;
// multi-token prediction needs sequences longer than its depth and a decoder.
TEST(Config, LatentAttentionAndMultiTokenPredictionKeys) {
  const std::string mla =
      "model:\n  attention: mla\n  kv_lora_rank: 16\n  qk_nope_head_dim: 16\n"
      "  qk_rope_head_dim: 8\n  v_head_dim: 16\n";
  EXPECT_NO_THROW(parse_config(mla, "run.yaml"));
  EXPECT_CONTAINS(parse_error("model:\n  attention: mla\n"),
                  "model.kv_lora_rank must be set (>= 1) with model.attention = mla");
  EXPECT_CONTAINS(parse_error(mla, {"model.v_head_dim=0"}),
                  "model.v_head_dim must be set (>= 1) with model.attention = mla");
  EXPECT_CONTAINS(parse_error(mla, {"model.qk_rope_head_dim=7"}),
                  "model.qk_rope_head_dim = 7 must be even (RoPE rotates pairs)");
  EXPECT_CONTAINS(parse_error(mla, {"model.n_kv_heads=2"}),
                  "model.n_kv_heads = 2 must equal model.n_heads = 4 with model.attention = mla");
  EXPECT_CONTAINS(parse_error(mla, {"model.head_dim=32"}),
                  "model.head_dim = 32 must be 0 with model.attention = mla");
  EXPECT_CONTAINS(parse_error(mla, {"model.qk_norm=true"}),
                  "model.qk_norm is not available with model.attention = mla");
  EXPECT_CONTAINS(parse_error(mla, {"model.qkv_bias=true"}),
                  "model.qkv_bias is not available with model.attention = mla");
  EXPECT_CONTAINS(parse_error("model:\n  kv_lora_rank: 16\n"),
                  "model.kv_lora_rank = 16 is a multi-head latent attention key, but "
                  "model.attention = mha");
  EXPECT_CONTAINS(parse_error("model:\n  q_lora_rank: 16\n"),
                  "model.q_lora_rank = 16 is a multi-head latent attention key");
  EXPECT_CONTAINS(parse_error("model:\n  attention: gqa\n"), "mha");

  EXPECT_NO_THROW(parse_config("model:\n  mtp_depth: 2\n", "run.yaml"));
  EXPECT_CONTAINS(parse_error("model:\n  mtp_depth: 4\ndata:\n  seq_len: 4\n"),
                  "data.seq_len = 4 must exceed model.mtp_depth = 4");
  EXPECT_CONTAINS(parse_error("model:\n  mtp_depth: -1\n"), "model.mtp_depth");
  Config c;
  c.model.kind = ModelKind::bts;
  c.bts.seed = "seed";
  c.bts.experts = {"expert"};
  c.model.mtp_depth = 1;
  EXPECT_CONTAINS(validate_error(c), "has no multi-token prediction modules");
}

// Every key appears as `key` in a table under its "## section" heading of docs/config.md.
TEST(Config, DocsListEveryKey) {
  std::ifstream in(repo_root / "docs/config.md");
  ASSERT_TRUE(in) << "cannot open docs/config.md";
  std::stringstream text;
  text << in.rdbuf();
  const std::string docs = text.str();
  for (const auto& key : config_keys()) {
    const std::string section = key.substr(0, key.find('.'));
    const auto begin = docs.find("\n## " + section + "\n");
    ASSERT_NE(begin, std::string::npos) << "no '## " << section << "' heading";
    const auto end = docs.find("\n## ", begin + 1);
    const std::string body =
        docs.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    EXPECT_CONTAINS(body, "| `" + key.substr(section.size() + 1) + "` |");
  }
}

}  // namespace
}  // namespace moe
