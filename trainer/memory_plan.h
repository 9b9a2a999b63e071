// Memory per rank before a job starts (moe-train --plan): what each rank of a layout will hold for
// the config's model, without training, data or an MPI job.
//
// Decisions:
// - Parameters come from the real declarations: the model is built into a ParameterStore that is
//   never allocated, once per distinct (TP rank, EP rank), with communicators that only know
//   their size and rank (any collective is an internal error). So every split, FSSDP owner deal
//   and tied or untied head is counted as the trainer will lay it out.
// - The layout (trainer/optimizer.cpp, trainer/gradient_sync.cpp): f32 master values and f32
//   gradients of every local parameter (gradients are not sharded, ZeRO-1 included); AdamW's two
//   f32 moments of every local parameter, or with parallel.zero: 1 of this rank's slice of each
//   parameter group's arena range (dense over dp, experts over edp); precision bf16 adds a bf16
//   compute copy of every parameter. Buffers (the expert bias) count with the parameters. Each
//   attention layer holds its RoPE frequency table (layers/attention.h).
// - Activations: trainer/activation_memory.h, for one micro-batch of train.micro_batch_size x
//   data.seq_len tokens. The expert rows are the capacity bound when moe.capacity_factor > 0,
//   else the balanced expectation: the EP group's tokens x top_k spread evenly over its ranks.
// - The ZeRO-1 step reduce-scatters into and all-gathers from padded buffers of a whole group
//   range; that happens after backward, when the activations are gone, so the total counts the
//   larger of the two.
// - Ranks differ (EP ranks' experts, FSSDP owners, ZeRO-1 slices); the worst rank is the one
//   with the largest total.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/run_config.h"

namespace moe {

struct RankMemory {
  int rank = 0;
  int64_t parameter_elements = 0;
  int64_t parameters = 0;             // f32 masters (and buffers)
  int64_t gradients = 0;              // f32
  int64_t optimizer = 0;              // AdamW m and v, f32
  int64_t compute_copy = 0;           // bf16 copy of the parameters (precision bf16)
  int64_t rope_tables = 0;            // RoPE frequencies, f64 [head_dim / 2] per attention layer
  int64_t activations = 0;            // one micro-batch's peak without recompute
  int64_t activations_recompute = 0;  // with train.recompute
  // Where they peak: in the backward of this block, or (-1) of the LM head.
  int peak_block = -1, peak_block_recompute = -1;
  int64_t fssdp_copies = 0;       // FSSDP expert copies and their gradients, in the activations
  int64_t optimizer_buffers = 0;  // the ZeRO-1 step's padded buffers
  int64_t total = 0;  // the static bytes + max(activations at train.recompute, optimizer buffers)
};

struct MemoryPlan {
  int world = 1, tp = 1, dp = 1, ep = 1;
  int64_t tokens = 0;             // per micro-batch and rank
  int64_t expert_rows = 0;        // rows one rank's experts process per MoE layer (0: dense model)
  bool capacity_bound = false;    // expert_rows is moe.capacity_factor's bound, not an expectation
  std::vector<RankMemory> ranks;  // by world rank

  const RankMemory& worst() const;
  bool ranks_differ() const;
};

// The plan for `config` on `world` ranks. InputError when the layout does not fit the world size
// or the model (the messages of a real start), or for model.kind bts.
MemoryPlan plan_memory(const Config& config, int world);

// The report moe-train --plan prints; a line starting "warning:" when the worst total exceeds
// device_memory.
std::string plan_report(const MemoryPlan& plan, const Config& config,
                        std::optional<int64_t> device_memory);

// "80GiB", "80GB", "1.5TiB", "512MiB", "1000000": bytes (KB, MB, GB, TB are powers of 1000,
// KiB .. TiB of 1024; units in any case). InputError naming `what` for anything else.
int64_t parse_byte_size(const std::string& text, const std::string& what);

// 1536 -> "1.50 KiB".
std::string format_bytes(int64_t bytes);

}  // namespace moe
