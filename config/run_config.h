// The run description: how a model is trained (parallel layout, FSSDP placement, data, optimizer,
// checkpoints, logging, initialization, BTS), and Config, the whole YAML file (DESIGN.md §1).
//
// Decisions:
// - Each key lives in one place: a member with its default, next to one line in its section's
//   visit() giving the YAML name, the allowed values and the meaning (config/schema.h). Reading,
//   writing and checking are generic visitors (config/yaml_io.cpp); docs/config.md is the user's
//   copy, and a test keeps it complete.
// - "0 = derived" keys (parallel.dp) keep the 0 in the config, so the printed config is what the
//   user wrote; dp needs the world size to resolve.
// - Integers are ints except seeds (int64). An integer key also accepts integral numbers written
//   like 1e4; a string key accepts any scalar, and an empty value means "".
// - validate() checks every value against its rule, then the constraints between keys, split by
//   concern (config/validation.h).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/model_config.h"
#include "core/device.h"
#include "core/log.h"

namespace moe {

// parallel.experts: how a layer's experts are placed over the EP group.
enum class ExpertPlacement { ep, fssdp, llep };
constexpr std::array<std::string_view, 3> enum_words(ExpertPlacement) {
  return {"ep", "fssdp", "llep"};
}

// train.device
constexpr std::array<std::string_view, 2> enum_words(DeviceType) { return {"cpu", "cuda"}; }

// train.precision: the dtype of activations and of the weights' compute copies; master weights,
// gradients and AdamW moments are f32 either way (docs/training.md "Mixed precision").
enum class Precision { f32, bf16 };
constexpr std::array<std::string_view, 2> enum_words(Precision) { return {"f32", "bf16"}; }
// Why a word that users try is not a choice, added to the config error.
inline std::string_view refusal_reason(Precision, std::string_view word) {
  if (word == "f16" || word == "fp16" || word == "float16")
    return "f16 would need loss scaling (its range is too small for gradients), which MoEForge "
           "does "
           "not implement; bf16 has f32's range and needs none";
  if (word.starts_with("fp8") || word.starts_with("f8")) return "fp8 training is not implemented";
  return {};
}

enum class LrSchedule { cosine, linear, constant, wsd };
constexpr std::array<std::string_view, 4> enum_words(LrSchedule) {
  return {"cosine", "linear", "constant", "wsd"};
}

// init.method
enum class InitMethod { scratch, load, copy, granular, drop, noise };
constexpr std::array<std::string_view, 6> enum_words(InitMethod) {
  return {"scratch", "load", "copy", "granular", "drop", "noise"};
}

// log.level
constexpr std::array<std::string_view, 3> enum_words(LogLevel) {
  return {"info", "warning", "error"};
}

struct ParallelConfig {
  int tp = 1;
  int dp = 0;
  int ep = 1;
  bool expert_tp = false;
  ExpertPlacement experts = ExpertPlacement::ep;
  int zero = 0;

  template <class V>
  void visit(V& v) {
    v.field("tp", tp, Range::at_least(1), "tensor-parallel size");
    v.field("dp", dp, Range::at_least(0), "data-parallel size; 0 = world size / tp");
    v.field("ep", ep, Range::at_least(1),
            "expert-parallel size, divides dp (and num_experts under ep; under fssdp 1 = dp)");
    v.field("expert_tp", expert_tp, "also split each expert over the TP group");
    v.field("experts", experts,
            "ep: each EP rank holds E/ep experts; fssdp: each expert has one owner in the EP "
            "group and is copied each step to where its tokens are (section fssdp); llep: as ep, "
            "and each forward moves an overloaded rank's excess tokens with their experts to the "
            "least-loaded ranks (section llep)");
    v.field("zero", zero, Range::within(0, 1),
            "1 = shard the optimizer moments over data parallelism (ZeRO-1)");
  }
  // The EP group's size on world_size ranks: ep, except that with experts: fssdp the default
  // ep = 1 means all data-parallel ranks (FSSDP over one rank would shard nothing).
  int expert_ranks(int world_size) const {
    if (experts != ExpertPlacement::fssdp || ep != 1) return ep;
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
  bool calibrate = true;
  double inter_node_row_cost = 1.0;

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
    v.field("calibrate", calibrate,
            "plan each MoE layer's copies from the tokens its router has just sent to each "
            "expert (true) or from the mean load of the last `window` steps (false)");
    v.field("inter_node_row_cost", inter_node_row_cost, Range::at_least(0),
            "what moving a token row between nodes costs, in units of computing it in its expert "
            "(forward and backward): calibrated routing weighs balance against traffic with it; "
            "0 = rows only");
  }
  bool operator==(const FssdpConfig&) const = default;
};

// parallel.experts: llep (Least-Loaded Expert Parallelism, parallel/fssdp/least_loaded.h).
struct LlepConfig {
  double capacity_factor = 1.1;
  int64_t min_tokens = 1024;
  double imbalance_threshold = 1.3;
  int slots = 2;

  template <class V>
  void visit(V& v) {
    v.field("capacity_factor", capacity_factor, Range::at_least(1),
            "tokens a rank takes before spilling, times the mean over ranks (the paper's alpha)");
    v.field("min_tokens", min_tokens, Range::at_least(1),
            "smallest chunk of an expert's tokens worth moving the expert for (m)");
    v.field("imbalance_threshold", imbalance_threshold, Range::at_least(0),
            "spill only when the busiest rank's tokens reach this times the mean (lambda); "
            "0 = always");
    v.field("slots", slots, Range::at_least(0),
            "experts of other ranks one rank may hold per MoE layer (memory)");
  }
  bool operator==(const LlepConfig&) const = default;
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
  DeviceType device = DeviceType::cpu;
  int steps = 200;
  int micro_batch_size = 8;
  int grad_accum = 1;
  double lr = 3e-3;
  double min_lr = 3e-4;
  int warmup_steps = 20;
  LrSchedule schedule = LrSchedule::cosine;
  double decay_fraction = 0.2;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;
  int max_nonfinite_steps = 3;
  double step_timeout_s = 1800;
  int64_t seed = 42;
  int eval_interval = 50;
  int eval_batches = 4;
  bool recompute = false;
  bool no_decay_embeddings = true;
  Precision precision = Precision::f32;
  bool tf32 = true;

  template <class V>
  void visit(V& v) {
    v.field("device", device, "where the model runs");
    v.field("steps", steps, Range::at_least(1), "optimizer steps");
    v.field("micro_batch_size", micro_batch_size, Range::at_least(1),
            "sequences per rank per pass");
    v.field("grad_accum", grad_accum, Range::at_least(1), "micro-batches per optimizer step");
    v.field("lr", lr, Range::at_least(0), "peak learning rate");
    v.field("min_lr", min_lr, Range::at_least(0), "final learning rate, <= lr");
    v.field("warmup_steps", warmup_steps, Range::at_least(0), "linear warmup, <= steps");
    v.field("schedule", schedule, "learning-rate decay after warmup");
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
    v.field("step_timeout_s", step_timeout_s, Range::at_least(0),
            "seconds a step may take before the job is aborted (a stalled rank); evaluation, "
            "checkpoint saves and the first step get 10 times as long; 0 = off");
    v.field("seed", seed, Range::at_least(0), "seed of parameter init");
    v.field("eval_interval", eval_interval, Range::at_least(0),
            "evaluate every n steps; 0 = never");
    v.field("eval_batches", eval_batches, Range::at_least(1),
            "global batches of validation data per evaluation");
    v.field("recompute", recompute, "recompute activations in backward");
    v.field("no_decay_embeddings", no_decay_embeddings, "no weight decay on the embedding");
    v.field("precision", precision,
            "activations and weight compute copies; f32 masters, gradients and moments either way");
    v.field("tf32", tf32,
            "cuda, precision f32: GEMMs on TF32 tensor cores (10-bit mantissa inputs)");
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
  LogLevel level = LogLevel::info;

  template <class V>
  void visit(V& v) {
    v.field("interval", interval, Range::at_least(1), "log every n steps");
    v.field("metrics_file", metrics_file, "per-step metrics file; empty = none");
    v.field("level", level, "least severe level printed");
  }
  bool operator==(const LogConfig&) const = default;
};

struct InitConfig {
  std::string from;
  InitMethod method = InitMethod::scratch;
  double drop_ratio = 0.5;
  double noise_std = 0.0;
  int64_t seed = 0;

  template <class V>
  void visit(V& v) {
    v.field("from", from,
            "checkpoint to load or dense checkpoint to upcycle; set iff method != scratch");
    v.field("method", method,
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
  LlepConfig llep;

  template <class V>
  void visit(V& v) {
    v.section("model", model, "decoder shape");
    v.section("rope_scaling", model.rope_scaling, "RoPE frequency scaling (part of the model)");
    v.section("moe", moe, "experts, router and balancing losses");
    v.section("parallel", parallel, "process layout");
    v.section("data", data, "training data");
    v.section("train", train, "optimizer and schedule");
    v.section("checkpoint", checkpoint, "saving and resuming");
    v.section("log", log, "logging");
    v.section("init", init, "initialization and upcycling");
    v.section("bts", bts, "Branch-Train-Stitch: used when model.kind is bts");
    v.section("fssdp", fssdp, "fully sharded experts: used when parallel.experts is fssdp");
    v.section("llep", llep, "least-loaded expert parallelism: used when parallel.experts is llep");
  }

  // Checks every value against its rule, then the constraints between keys. `where`
  // names the source in messages.
  void validate(const std::string& where = "config") const;
  bool operator==(const Config&) const = default;
};

}  // namespace moe
