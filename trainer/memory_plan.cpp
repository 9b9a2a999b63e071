// See memory_plan.h.
#include "trainer/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "layers/parameters.h"
#include "trainer/activation_memory.h"
#include "trainer/make_model.h"

namespace moe {

namespace {

// A group's size and this rank's place in it, for building a model's declarations; nothing
// communicates while a model is built, and anything that tries is a bug of the plan.
class ShapeOnlyCommunicator final : public Communicator {
 public:
  ShapeOnlyCommunicator(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce(Tensor&, ReduceOp, Stream&) override { refuse(); }
  void reduce_scatter(const Tensor&, Tensor&, ReduceOp, Stream&) override { refuse(); }
  void all_gather(const Tensor&, Tensor&, Stream&) override { refuse(); }
  void all_to_all_v(const Tensor&, const std::vector<int64_t>&, Tensor&,
                    const std::vector<int64_t>&, Stream&) override {
    refuse();
  }
  std::vector<int64_t> exchange_counts(const std::vector<int64_t>&) override { refuse(); }
  void send_recv(const std::vector<Transfer>&, const std::vector<Transfer>&, Stream&) override {
    refuse();
  }
  void broadcast(Tensor&, int, Stream&) override { refuse(); }
  void barrier() override { refuse(); }
  std::unique_ptr<Communicator> split(int, int) override { refuse(); }

 private:
  [[noreturn]] static void refuse() {
    MOE_THROW(InternalError, "the memory plan built a model that communicates");
  }
  int rank_, size_;
};

constexpr int64_t kF32 = 4;

// What the declarations of one (TP rank, EP rank) hold.
struct Declared {
  int64_t elements = 0, buffers = 0;
  int64_t dense = 0, expert = 0;  // arena range sizes of the two parameter groups
  int64_t local_experts = 0;      // the most one MoE layer holds on this rank
};

Declared declare(const Config& config, int world, int tp, int dp, int ep, int tp_rank,
                 int ep_rank) {
  // The ranks of EP index ep_rank and EDP index 0 (dp rank ep_rank): the declarations do not
  // depend on the EDP index.
  ShapeOnlyCommunicator world_group(0, world), tp_group(tp_rank, tp), dp_group(ep_rank, dp),
      ep_group(ep_rank, ep), edp_group(0, dp / ep);
  const ParallelGroups groups{&world_group, &tp_group,  &dp_group,
                              &ep_group,    &edp_group, config.parallel.expert_tp};
  ParameterStore store(DType::f32);
  const std::unique_ptr<LanguageModel> model = make_model(config, store, groups);
  Declared d;
  d.elements = store.numel();
  for (const Buffer& b : store.buffers()) d.buffers += b.value.numel();
  d.dense = store.range(ParamGroup::dense).size();
  d.expert = store.range(ParamGroup::expert).size();
  for (const Parameter& p : store.parameters())
    if (p.name.ends_with(".experts.w_gate"))
      d.local_experts = std::max(d.local_experts, p.shape[0]);
  return d;
}

// This rank's moment elements of one group's range, sharded over `ranks` with ZeRO-1 as AdamW
// does (padded slices, the last ones possibly short or empty).
int64_t owned_moments(int64_t range, bool zero, int ranks, int rank) {
  if (!zero || ranks == 1) return range;
  const int64_t slice = (range + ranks - 1) / ranks;
  const int64_t lo = std::min(range, rank * slice);
  return std::min(range, lo + slice) - lo;
}

// AdamW::step under ZeRO-1: each sharded group's gradient slice stays for the update, and one
// group at a time has a padded whole-range buffer and a slice besides (reduce-scatter, then
// all-gather).
int64_t zero_buffers(const std::vector<std::pair<int64_t, int>>& groups) {
  int64_t slices = 0, largest = 0;
  for (const auto& [range, ranks] : groups) {
    if (ranks == 1) continue;
    const int64_t slice = (range + ranks - 1) / ranks;
    slices += slice;
    largest = std::max(largest, slice * ranks + slice);
  }
  return (slices + largest) * kF32;
}

ActivationShape activation_shape(const Config& config, int tp, int ep, int64_t local_experts,
                                 int64_t* expert_rows) {
  const ModelConfig& m = config.model;
  const MoeConfig& moe = config.moe;
  const bool fssdp = config.parallel.experts == ExpertPlacement::fssdp;
  ActivationShape s;
  s.batch = config.train.micro_batch_size;
  s.seq_len = config.data.seq_len;
  s.d_model = m.d_model;
  s.vocab = m.vocab_size / tp;
  s.q_heads = m.n_heads / tp;
  s.kv_heads = m.n_kv_heads / tp;
  s.head_dim = m.effective_head_dim();
  if (m.attention == AttentionKind::mla) {
    s.mla = true;
    s.q_rank = m.q_lora_rank;
    s.kv_rank = m.kv_lora_rank;
    s.nope = m.qk_nope_head_dim;
    s.rope = m.qk_rope_head_dim;
    s.v_dim = m.v_head_dim;
    s.head_dim = std::max(s.nope + s.rope, s.v_dim);
  }
  s.qk_norm = m.qk_norm;
  s.qk_norm_per_head = m.qk_norm_scope == QkNormScope::head;
  s.qkv_bias = m.qkv_bias;
  s.ffn_hidden = m.ffn_hidden / tp;
  for (int layer = 0; layer < m.n_layers + m.mtp_depth; ++layer)
    s.moe_blocks.push_back(moe.is_moe_layer(layer));
  s.mtp_depth = m.mtp_depth;
  s.experts = moe.num_experts;
  s.top_k = moe.top_k;
  s.expert_hidden = config.parallel.expert_tp ? moe.expert_hidden / tp : moe.expert_hidden;
  s.shared_hidden = int64_t{moe.shared_experts} * moe.effective_shared_expert_hidden() / tp;
  s.shared_gate = moe.shared_experts > 0 && moe.shared_expert_gate;
  // Rows: every TP rank routes all its tokens; whole experts run on a TP rank's share of them,
  // split experts on all of them. The EP group's rows spread over its ranks.
  const int64_t tokens = s.batch * s.seq_len, k = moe.top_k;
  const int64_t share = config.parallel.expert_tp ? 1 : tp;
  auto divide_up = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  if (fssdp || config.parallel.experts == ExpertPlacement::llep)
    s.expert_copies = std::min<int64_t>(fssdp ? config.fssdp.slots : config.llep.slots,
                                        moe.num_experts - local_experts);
  if (moe.capacity_factor > 0) {
    const auto capacity = std::min<int64_t>(
        tokens, static_cast<int64_t>(std::ceil(static_cast<double>(k) * tokens / moe.num_experts *
                                               moe.capacity_factor)));
    s.routed_rows = std::min(tokens * k, moe.num_experts * capacity);
    const int64_t held = local_experts + s.expert_copies;
    s.expert_rows = divide_up(std::min(ep * held * capacity, ep * s.routed_rows), share);
  } else {
    s.routed_rows = tokens * k;
    s.expert_rows = divide_up(tokens * k, share);
  }
  s.tp = tp;
  s.ep = ep;
  s.expert_tp = config.parallel.expert_tp;
  s.rematerialize = fssdp && config.fssdp.rematerialize;
  s.bf16 = config.train.precision == Precision::bf16;
  *expert_rows = s.expert_rows;
  return s;
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

const RankMemory& MemoryPlan::worst() const {
  return *std::max_element(
      ranks.begin(), ranks.end(),
      [](const RankMemory& a, const RankMemory& b) { return a.total < b.total; });
}

bool MemoryPlan::ranks_differ() const {
  for (const RankMemory& r : ranks)
    if (r.total != ranks.front().total) return true;
  return false;
}

MemoryPlan plan_memory(const Config& config, int world) {
  MOE_CHECK(config.model.kind != ModelKind::bts,
            "moe-train --plan does not plan model.kind bts (its decoders come from checkpoints)");
  MOE_CHECK(world >= 1, "--world = ", world, " must be at least 1");
  const ParallelConfig& p = config.parallel;
  MemoryPlan plan;
  plan.world = world;
  plan.tp = p.tp;
  MOE_CHECK(world % p.tp == 0, "parallel.tp = ", p.tp, " does not divide the ", world,
            " ranks of the job");
  plan.dp = p.dp > 0 ? p.dp : world / p.tp;
  MOE_CHECK(p.tp * plan.dp == world, "parallel.tp = ", p.tp, " x parallel.dp = ", plan.dp, " = ",
            p.tp * plan.dp, " ranks, but the job has ", world);
  plan.ep = p.expert_ranks(world);
  MOE_CHECK(plan.dp % plan.ep == 0, "parallel.ep = ", plan.ep,
            " must divide parallel.dp = ", plan.dp, " (the data-parallel size)");
  plan.tokens = int64_t{config.train.micro_batch_size} * config.data.seq_len;
  plan.capacity_bound = config.moe.capacity_factor > 0;
  const bool zero = p.zero == 1, bf16 = config.train.precision == Precision::bf16;
  bool has_moe = false;
  for (int layer = 0; layer < config.model.n_layers + config.model.mtp_depth; ++layer)
    has_moe = has_moe || config.moe.is_moe_layer(layer);
  std::map<std::pair<int, int>, Declared> declared;  // by (tp rank, ep rank)
  for (int rank = 0; rank < world; ++rank) {
    // The process grid's numbering (parallel/process_grid.h): tp innermost, then ep, then edp.
    const int tp_rank = rank % p.tp, dp_rank = rank / p.tp;
    const int ep_rank = dp_rank % plan.ep, edp_rank = dp_rank / plan.ep;
    auto found = declared.find({tp_rank, ep_rank});
    if (found == declared.end())
      found = declared
                  .emplace(std::pair{tp_rank, ep_rank},
                           declare(config, world, p.tp, plan.dp, plan.ep, tp_rank, ep_rank))
                  .first;
    const Declared& d = found->second;
    RankMemory r;
    r.rank = rank;
    r.parameter_elements = d.elements;
    r.parameters = (d.elements + d.buffers) * kF32;
    r.gradients = d.elements * kF32;
    const int edp = plan.dp / plan.ep;
    r.optimizer =
        2 * kF32 *
        (owned_moments(d.dense, zero, plan.dp, dp_rank) +
         owned_moments(d.expert, zero && p.experts == ExpertPlacement::ep, edp, edp_rank));
    r.compute_copy = bf16 ? d.elements * 2 : 0;
    r.rope_tables = int64_t{config.model.n_layers + config.model.mtp_depth} *
                    (config.model.rotary_dim() / 2) * static_cast<int64_t>(sizeof(double));
    int64_t expert_rows = 0;
    const ActivationShape shape =
        activation_shape(config, p.tp, plan.ep, d.local_experts, &expert_rows);
    if (has_moe) plan.expert_rows = std::max(plan.expert_rows, expert_rows);
    const ActivationPeak plain = activation_peak(shape, false);
    const ActivationPeak recomputed = activation_peak(shape, true);
    r.activations = plain.bytes;
    r.activations_recompute = recomputed.bytes;
    r.peak_block = plain.block;
    r.peak_block_recompute = recomputed.block;
    r.fssdp_copies = config.train.recompute ? recomputed.fssdp_copies : plain.fssdp_copies;
    r.optimizer_buffers = zero ? zero_buffers({{d.dense, plan.dp}, {d.expert, edp}}) : 0;
    r.total = r.parameters + r.gradients + r.optimizer + r.compute_copy + r.rope_tables +
              std::max(config.train.recompute ? r.activations_recompute : r.activations,
                       r.optimizer_buffers);
    plan.ranks.push_back(r);
  }
  return plan;
}

std::string format_bytes(int64_t bytes) {
  static const char* const units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.2f %s", value, units[unit]);
  return text;
}

int64_t parse_byte_size(const std::string& text, const std::string& what) {
  static const std::regex form(R"(([0-9]+(\.[0-9]+)?)\s*([A-Za-z]*))");
  static const std::map<std::string, double> units = {
      {"", 1},      {"b", 1},        {"kb", 1e3},     {"mb", 1e6},     {"gb", 1e9},
      {"tb", 1e12}, {"kib", 0x1p10}, {"mib", 0x1p20}, {"gib", 0x1p30}, {"tib", 0x1p40}};
  std::smatch match;
  std::string unit;
  if (std::regex_match(text, match, form)) {
    unit = match[3].str();
    std::transform(unit.begin(), unit.end(), unit.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  const auto scale = units.find(unit);
  const double bytes =
      match.empty() || scale == units.end() ? 0 : std::stod(match[1].str()) * scale->second;
  MOE_CHECK(bytes >= 1 && bytes < 0x1p62, what, " '", text,
            "' is not a memory size: write a number with an optional unit, such as 80GiB, 80GB, "
            "1.5TiB or 85899345920 (bytes); KB, MB, GB, TB are powers of 1000, KiB, MiB, GiB, TiB "
            "powers of 1024");
  return static_cast<int64_t>(bytes);
}

std::string plan_report(const MemoryPlan& plan, const Config& config,
                        std::optional<int64_t> device_memory) {
  const bool bf16 = config.train.precision == Precision::bf16, recompute = config.train.recompute;
  const RankMemory& w = plan.worst();
  std::ostringstream out;
  out << "memory plan: " << plan.world << (plan.world == 1 ? " rank" : " ranks") << " = tp "
      << plan.tp << " x dp " << plan.dp << ", experts over ep " << plan.ep << " ("
      << word_of(config.parallel.experts) << ")"
      << (config.parallel.expert_tp ? ", experts split over tp" : "")
      << (config.parallel.zero == 1 ? ", ZeRO-1" : "") << "; precision " << (bf16 ? "bf16" : "f32")
      << ", train.recompute " << (recompute ? "on" : "off") << "\n";
  out << "micro-batch: " << config.train.micro_batch_size << " x " << config.data.seq_len << " = "
      << plan.tokens << " tokens per rank\n";
  if (plan.expert_rows > 0)
    out << "expert rows per MoE layer and rank: " << plan.expert_rows
        << (plan.capacity_bound
                ? ", the bound of moe.capacity_factor"
                : ", the balanced expectation (the EP group's tokens x top_k spread evenly over "
                  "its ranks); imbalanced routing can exceed it")
        << "\n";
  if (plan.ranks_differ()) {
    const RankMemory& least = *std::min_element(
        plan.ranks.begin(), plan.ranks.end(),
        [](const RankMemory& a, const RankMemory& b) { return a.total < b.total; });
    out << "per rank: the worst, rank " << w.rank << " (ranks differ; the least is rank "
        << least.rank << " with " << format_bytes(least.total) << ")\n";
  } else {
    out << "per rank (every rank alike):\n";
  }
  auto line = [&out](const char* label, int64_t bytes, const std::string& note) {
    char head[64];
    std::snprintf(head, sizeof head, "  %-28s %12s", label, format_bytes(bytes).c_str());
    out << head << (note.empty() ? "" : "  " + note) << "\n";
  };
  line("parameters", w.parameters, with_commas(w.parameter_elements) + " elements, f32 masters");
  line("gradients", w.gradients, "f32");
  line("optimizer state", w.optimizer,
       config.parallel.zero == 1 ? "AdamW m and v, f32, this rank's ZeRO-1 slices"
                                 : "AdamW m and v, f32");
  line("compute copy", w.compute_copy, bf16 ? "bf16" : "none in precision f32");
  line("rope tables", w.rope_tables, "f64 RoPE frequencies, one table per layer");
  auto where = [](int block) {
    return "one micro-batch's peak, in the backward of " +
           (block < 0 ? std::string("the LM head") : "block " + std::to_string(block));
  };
  line("activations, no recompute", w.activations, where(w.peak_block));
  line("activations, recompute", w.activations_recompute, where(w.peak_block_recompute));
  if (w.fssdp_copies > 0)
    line("  of which FSSDP copies", w.fssdp_copies, "expert copies and their gradients");
  if (w.optimizer_buffers > 0)
    line("ZeRO-1 step buffers", w.optimizer_buffers, "after backward, instead of activations");
  line("total", w.total,
       std::string("with the activations ") + (recompute ? "of recompute" : "without recompute") +
           (device_memory ? ", of " + format_bytes(*device_memory) + " (--device-memory)" : ""));
  if (device_memory && w.total > *device_memory)
    out << "warning: rank " << w.rank << " needs " << format_bytes(w.total) << ", more than the "
        << format_bytes(*device_memory) << " of --device-memory; it will run out of memory"
        << (!recompute && w.total - std::max(w.activations, w.optimizer_buffers) +
                                  std::max(w.activations_recompute, w.optimizer_buffers) <=
                              *device_memory
                ? " (with train.recompute: true it would fit)"
                : "")
        << "\n";
  return out.str();
}

}  // namespace moe
