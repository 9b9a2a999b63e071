// Run configuration: one YAML file, plus --set overrides, into typed structs (DESIGN.md §1).
//
// Decisions:
// - Each key lives in one place: a member with its default, next to one line in its section's
//   visit() giving the YAML name, the allowed values (a Range or Choices) and the meaning. Generic
//   visitors in config.cpp read YAML (rejecting unknown keys), write YAML and check values, so a
//   new key needs no other code; docs/config.md is the user's copy, and a test keeps it complete.
// - --set overrides edit the parsed YAML tree before conversion, so they pass the same unknown-key,
//   type and range checks as the file, and an error names the --set that caused it.
// - Enum-like keys are strings checked against their choices: the YAML, the error messages and the
//   code that branches on them read the same word.
// - "0 = derived" keys (head_dim, shared_expert_hidden, parallel.dp) keep the 0 in the config, so
//   the printed config is what the user wrote; effective_*() resolve the first two (dp needs the
//   world size).
// - Integers are ints except seeds (int64). An integer key also accepts integral numbers written
//   like 1e4; a string key accepts any scalar, and an empty value means "".
//
// Errors are InputError naming the source (file or --set), the key path, the value and what is
// allowed, e.g. "unknown key 'model.n_layer' in run.yaml; did you mean 'model.n_layers'?".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

// Allowed values of a numeric key: from lo to hi, each end closed or open.
struct Range {
  static constexpr double unbounded = std::numeric_limits<double>::infinity();
  double lo = -unbounded;
  double hi = unbounded;
  bool lo_open = false;
  bool hi_open = false;

  static constexpr Range at_least(double lo) { return {lo, unbounded, false, false}; }
  static constexpr Range above(double lo) { return {lo, unbounded, true, false}; }
  static constexpr Range within(double lo, double hi) { return {lo, hi, false, false}; }
  // [lo, hi)
  static constexpr Range right_open(double lo, double hi) { return {lo, hi, false, true}; }
};

// Allowed values of a string key.
struct Choices {
  Choices(std::initializer_list<std::string_view> values) : values(values) {}
  std::vector<std::string_view> values;
};

// A visitor has section(name, Section&, doc) and field(name, T&, [Range | Choices,] doc).

struct ModelConfig {
  std::string kind = "decoder";
  int vocab_size = 257;
  int d_model = 128;
  int n_layers = 4;
  int n_heads = 4;
  int n_kv_heads = 4;
  int head_dim = 0;
  int ffn_hidden = 512;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool qk_norm = false;
  std::string qk_norm_scope = "head";
  bool qkv_bias = false;
  bool tie_embeddings = true;
  int max_seq_len = 256;
  double init_std = 0.02;

  template <class V>
  void visit(V& v) {
    v.field("kind", kind, Choices{"decoder", "bts"},
            "a decoder, or frozen decoders joined by trained stitch layers (section bts)");
    v.field("vocab_size", vocab_size, Range::at_least(1), "token vocabulary size");
    v.field("d_model", d_model, Range::at_least(1), "model width (residual stream)");
    v.field("n_layers", n_layers, Range::at_least(1), "decoder blocks");
    v.field("n_heads", n_heads, Range::at_least(1), "attention query heads");
    v.field("n_kv_heads", n_kv_heads, Range::at_least(1), "key/value heads (GQA); divides n_heads");
    v.field("head_dim", head_dim, Range::at_least(0), "size of one head; 0 = d_model / n_heads");
    v.field("ffn_hidden", ffn_hidden, Range::at_least(1), "hidden size of the dense SwiGLU FFN");
    v.field("rope_theta", rope_theta, Range::above(0), "RoPE base");
    v.field("norm_eps", norm_eps, Range::above(0), "RMSNorm epsilon");
    v.field("qk_norm", qk_norm, "RMSNorm on each query and key head");
    v.field("qk_norm_scope", qk_norm_scope, Choices{"head", "projection"},
            "qk_norm over each head (Qwen3) or over the whole q and k projections (OLMoE)");
    v.field("qkv_bias", qkv_bias, "bias on the query/key/value projections");
    v.field("tie_embeddings", tie_embeddings, "LM head shares the token embedding");
    v.field("max_seq_len", max_seq_len, Range::at_least(1), "longest sequence (RoPE table)");
    v.field("init_std", init_std, Range::above(0), "std of the normal init of weights");
  }
  int effective_head_dim() const { return head_dim > 0 ? head_dim : d_model / n_heads; }
  bool operator==(const ModelConfig&) const = default;
};

struct MoeConfig {
  int num_experts = 8;
  int top_k = 2;
  int expert_hidden = 256;
  int shared_experts = 0;
  int shared_expert_hidden = 0;
  bool shared_expert_gate = false;
  int first_k_dense = 0;
  int moe_layer_freq = 1;
  std::string router_score = "softmax";
  bool renormalize = true;
  double routed_scaling = 1.0;
  double capacity_factor = 0.0;
  std::string drop_policy = "probs";
  double aux_loss_coeff = 0.01;
  std::string aux_loss_type = "micro_batch";
  std::string aux_loss_norm = "megatron";
  double z_loss_coeff = 0.001;
  bool expert_bias = false;
  double expert_bias_rate = 0.001;
  double router_skew = 0;

  template <class V>
  void visit(V& v) {
    v.field("num_experts", num_experts, Range::at_least(1), "routed experts per MoE layer");
    v.field("top_k", top_k, Range::at_least(1), "experts per token, <= num_experts");
    v.field("expert_hidden", expert_hidden, Range::at_least(1), "hidden size of a routed expert");
    v.field("shared_experts", shared_experts, Range::at_least(0), "always-active shared experts");
    v.field("shared_expert_hidden", shared_expert_hidden, Range::at_least(0),
            "hidden size of a shared expert; 0 = expert_hidden");
    v.field("shared_expert_gate", shared_expert_gate,
            "scale the shared experts' output by a learned sigmoid gate per token (Qwen2-MoE)");
    v.field("first_k_dense", first_k_dense, Range::at_least(0), "the first k layers are dense");
    v.field("moe_layer_freq", moe_layer_freq, Range::at_least(1),
            "after those, layer i is MoE when i % moe_layer_freq == 0");
    v.field("router_score", router_score, Choices{"softmax", "sigmoid"}, "router scoring function");
    v.field("renormalize", renormalize, "top-k gate weights renormalized to sum to 1");
    v.field("routed_scaling", routed_scaling, Range::above(0),
            "scale of the routed experts' output");
    v.field("capacity_factor", capacity_factor, Range::at_least(0),
            "expert capacity; 0 = dropless");
    v.field("drop_policy", drop_policy, Choices{"probs", "position"},
            "over capacity, drop the lowest-probability or the latest tokens");
    v.field("aux_loss_coeff", aux_loss_coeff, Range::at_least(0), "load-balancing loss; 0 = off");
    v.field("aux_loss_type", aux_loss_type, Choices{"micro_batch", "sequence", "global_batch"},
            "tokens over which expert load is counted");
    v.field("aux_loss_norm", aux_loss_norm, Choices{"megatron", "hf", "switch"},
            "scaling convention of the load-balancing loss");
    v.field("z_loss_coeff", z_loss_coeff, Range::at_least(0), "router z-loss; 0 = off");
    v.field("expert_bias", expert_bias, "aux-loss-free balancing bias on expert selection");
    v.field("expert_bias_rate", expert_bias_rate, Range::at_least(0), "expert bias update rate");
    v.field("router_skew", router_skew, Range::at_least(0),
            "benchmarks: favor low-numbered experts in the choice (adds skew * (1 - e / (E - 1)) / "
            "E to expert e's score); 0 = off");
  }
  int effective_shared_expert_hidden() const {
    return shared_expert_hidden > 0 ? shared_expert_hidden : expert_hidden;
  }
  bool is_moe_layer(int layer) const {
    return layer >= first_k_dense && layer % moe_layer_freq == 0;
  }
  bool operator==(const MoeConfig&) const = default;
};

struct ParallelConfig {
  int tp = 1;
  int dp = 0;
  int ep = 1;
  bool expert_tp = false;
  std::string experts = "ep";
  int zero = 0;

  template <class V>
  void visit(V& v) {
    v.field("tp", tp, Range::at_least(1), "tensor-parallel size");
    v.field("dp", dp, Range::at_least(0), "data-parallel size; 0 = world size / tp");
    v.field("ep", ep, Range::at_least(1),
            "expert-parallel size, divides dp (and num_experts under ep; under fssdp 1 = dp)");
    v.field("expert_tp", expert_tp, "also split each expert over the TP group");
    v.field("experts", experts, Choices{"ep", "fssdp"},
            "ep: each EP rank holds E/ep experts; fssdp: each expert has one owner in the EP "
            "group and is copied each step to where its tokens are (section fssdp)");
    v.field("zero", zero, Range::within(0, 1),
            "1 = shard the optimizer moments over data parallelism (ZeRO-1)");
  }
  // The EP group's size on world_size ranks: ep, except that with experts: fssdp the default
  // ep = 1 means all data-parallel ranks (FSSDP over one rank would shard nothing).
  int expert_ranks(int world_size) const {
    if (experts != "fssdp" || ep != 1) return ep;
    return dp > 0 ? dp : world_size / tp;
  }
  bool operator==(const ParallelConfig&) const = default;
};

// parallel.experts: fssdp (Hecate, parallel/fssdp/): how many copies of experts a step may make.
struct FssdpConfig {
  int slots = 2;
  int overlap = 0;
  int window = 5;
  int ranks_per_node = 0;
  bool rematerialize = false;
  int reshard_interval = 100;

  template <class V>
  void visit(V& v) {
    v.field("slots", slots, Range::at_least(0),
            "expert copies one rank may hold per MoE layer besides the experts it owns (memory)");
    v.field("overlap", overlap, Range::at_least(0),
            "expert copies per layer a step can hide behind other work; 0 = moe.num_experts");
    v.field("window", window, Range::at_least(1),
            "steps of expert load the placement predicts from (their mean)");
    v.field("ranks_per_node", ranks_per_node, Range::at_least(0),
            "ranks per node, for placing copies near the tokens; 0 = detect (moe-train)");
    v.field("rematerialize", rematerialize,
            "drop each layer's copies after its forward and gather them again for its backward "
            "(less memory, twice the all-gather traffic)");
    v.field("reshard_interval", reshard_interval, Range::at_least(0),
            "steps between moving expert owners (with their optimizer state) to balance the "
            "recent load; 0 = never");
  }
  bool operator==(const FssdpConfig&) const = default;
};

struct DataConfig {
  std::string train;
  std::string valid;
  std::string tokenizer = "byte";
  int seq_len = 128;
  double val_fraction = 0.01;
  int64_t seed = 1234;

  template <class V>
  void visit(V& v) {
    v.field("train", train,
            "training blend: 'PREFIX WEIGHT, PREFIX WEIGHT, ...' (indexed datasets)");
    v.field("valid", valid,
            "validation datasets 'PREFIX, PREFIX, ...'; empty = hold out from train");
    v.field("tokenizer", tokenizer, "byte, or a tokenizer.json (or a directory with one)");
    v.field("seq_len", seq_len, Range::at_least(1), "tokens per sequence, <= model.max_seq_len");
    v.field("val_fraction", val_fraction, Range::right_open(0, 1),
            "without data.valid: share of each training dataset's documents held out");
    v.field("seed", seed, Range::at_least(0), "seed of the shuffle");
  }
  bool operator==(const DataConfig&) const = default;
};

struct TrainConfig {
  std::string device = "cpu";
  int steps = 200;
  int micro_batch_size = 8;
  int grad_accum = 1;
  double lr = 3e-3;
  double min_lr = 3e-4;
  int warmup_steps = 20;
  std::string schedule = "cosine";
  double decay_fraction = 0.2;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;
  int max_nonfinite_steps = 3;
  int64_t seed = 42;
  int eval_interval = 50;
  int eval_batches = 4;
  bool recompute = false;
  bool no_decay_embeddings = true;

  template <class V>
  void visit(V& v) {
    v.field("device", device, Choices{"cpu", "cuda"}, "where the model runs");
    v.field("steps", steps, Range::at_least(1), "optimizer steps");
    v.field("micro_batch_size", micro_batch_size, Range::at_least(1),
            "sequences per rank per pass");
    v.field("grad_accum", grad_accum, Range::at_least(1), "micro-batches per optimizer step");
    v.field("lr", lr, Range::at_least(0), "peak learning rate");
    v.field("min_lr", min_lr, Range::at_least(0), "final learning rate, <= lr");
    v.field("warmup_steps", warmup_steps, Range::at_least(0), "linear warmup, <= steps");
    v.field("schedule", schedule, Choices{"cosine", "linear", "constant", "wsd"},
            "learning-rate decay after warmup");
    v.field("decay_fraction", decay_fraction, Range::within(0, 1),
            "wsd: fraction of steps decaying");
    v.field("weight_decay", weight_decay, Range::at_least(0), "AdamW decoupled weight decay");
    v.field("beta1", beta1, Range::right_open(0, 1), "AdamW first-moment decay");
    v.field("beta2", beta2, Range::right_open(0, 1), "AdamW second-moment decay");
    v.field("eps", eps, Range::above(0), "AdamW epsilon");
    v.field("grad_clip", grad_clip, Range::at_least(0), "max global gradient norm; 0 = off");
    v.field("max_nonfinite_steps", max_nonfinite_steps, Range::at_least(0),
            "steps in a row with a non-finite loss or gradient norm that are skipped (no "
            "update) before the run stops");
    v.field("seed", seed, Range::at_least(0), "seed of parameter init");
    v.field("eval_interval", eval_interval, Range::at_least(0),
            "evaluate every n steps; 0 = never");
    v.field("eval_batches", eval_batches, Range::at_least(1), "micro-batches per evaluation");
    v.field("recompute", recompute, "recompute activations in backward");
    v.field("no_decay_embeddings", no_decay_embeddings, "no weight decay on the embedding");
  }
  bool operator==(const TrainConfig&) const = default;
};

struct CheckpointConfig {
  std::string dir;
  int interval = 0;
  int keep_last = 3;
  std::string resume = "auto";
  bool async = false;

  template <class V>
  void visit(V& v) {
    v.field("dir", dir, "where step directories go; empty = no checkpoints");
    v.field("interval", interval, Range::at_least(0), "save every n steps; 0 = only at the end");
    v.field("keep_last", keep_last, Range::at_least(0), "newest checkpoints kept; 0 = all");
    v.field("resume", resume,
            "auto = the newest committed checkpoint in dir (if any), none, or a step directory");
    v.field("async", async, "write in a background thread while training goes on");
  }
  bool operator==(const CheckpointConfig&) const = default;
};

struct LogConfig {
  int interval = 10;
  std::string metrics_file;
  std::string level = "info";

  template <class V>
  void visit(V& v) {
    v.field("interval", interval, Range::at_least(1), "log every n steps");
    v.field("metrics_file", metrics_file, "per-step metrics file; empty = none");
    v.field("level", level, Choices{"info", "warning", "error"}, "least severe level printed");
  }
  bool operator==(const LogConfig&) const = default;
};

struct InitConfig {
  std::string from;
  std::string method = "scratch";
  double drop_ratio = 0.5;
  double noise_std = 0.0;
  int64_t seed = 0;

  template <class V>
  void visit(V& v) {
    v.field("from", from,
            "checkpoint to load or dense checkpoint to upcycle; set iff method != scratch");
    v.field("method", method, Choices{"scratch", "load", "copy", "granular", "drop", "noise"},
            "random init, the same model's weights (load), or how experts are made from the "
            "dense FFN");
    v.field("drop_ratio", drop_ratio, Range::within(0, 1), "drop: share of neurons re-initialized");
    v.field("noise_std", noise_std, Range::at_least(0), "noise: std of noise on copied experts");
    v.field("seed", seed, Range::at_least(0), "seed of upcycling randomness");
  }
  bool operator==(const InitConfig&) const = default;
};

// model.kind: bts (Branch-Train-Stitch, upcycling/bts_model.h). The decoders' shapes come from
// their checkpoints; the model.* sizes are not used.
struct BtsConfig {
  std::string seed;
  std::vector<std::string> experts;
  std::vector<std::string> drop;
  int stitch_every = 1;
  bool self_contained = false;

  template <class V>
  void visit(V& v) {
    v.field("seed", seed, "checkpoint of the hub (the seed model): a run or step directory");
    v.field("experts", experts,
            "checkpoints of the experts (branches of the seed), each named by its run directory");
    v.field("drop", drop, "experts (by name) to leave out, with their stitch parameters");
    v.field("stitch_every", stitch_every, Range::at_least(1),
            "a stitch layer after every k-th layer; divides the decoders' n_layers");
    v.field("self_contained", self_contained,
            "every checkpoint carries the decoders (decoders/NAME) and needs no other directory");
  }
  bool operator==(const BtsConfig&) const = default;
};

struct Config {
  ModelConfig model;
  MoeConfig moe;
  ParallelConfig parallel;
  DataConfig data;
  TrainConfig train;
  CheckpointConfig checkpoint;
  LogConfig log;
  InitConfig init;
  BtsConfig bts;
  FssdpConfig fssdp;

  template <class V>
  void visit(V& v) {
    v.section("model", model, "decoder shape");
    v.section("moe", moe, "experts, router and balancing losses");
    v.section("parallel", parallel, "process layout");
    v.section("data", data, "training data");
    v.section("train", train, "optimizer and schedule");
    v.section("checkpoint", checkpoint, "saving and resuming");
    v.section("log", log, "logging");
    v.section("init", init, "initialization and upcycling");
    v.section("bts", bts, "Branch-Train-Stitch: used when model.kind is bts");
    v.section("fssdp", fssdp, "fully sharded experts: used when parallel.experts is fssdp");
  }

  // Checks every value against its Range or Choices, then the constraints between keys. `where`
  // names the source in messages.
  void validate(const std::string& where = "config") const;
  bool operator==(const Config&) const = default;
};

// Reads a config file and applies overrides ("a.b.c=value", from --set, in order), then validates.
Config load_config(const std::string& yaml_path, const std::vector<std::string>& overrides = {});
// The same for YAML text; source_name stands for the file in messages.
Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides = {});
// Every key with its value and meaning as a comment; parse_config(to_yaml(c)) == c.
std::string to_yaml(const Config& config);
// Every key path ("model.d_model"), in file order.
std::vector<std::string> config_keys();

}  // namespace moe
