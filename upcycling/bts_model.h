// A BTS model (Branch-Train-Stitch, METHODS.md §3): a frozen hub (the seed) and frozen experts
// (branches of it trained on one domain each) run in lock-step, joined by trainable stitch layers
// (layers/stitch.h) after every `stitch_every`-th layer; the output is the hub's head.
//
// Decisions:
// - The decoders are plain Models over frozen stores (no gradient arena), loaded from their
//   checkpoints, which the BTS checkpoint references by directory (its config) instead of copying;
//   bts.self_contained attaches them to every checkpoint (hard links where possible), and a
//   decoder found attached to the checkpoint being loaded takes precedence over its directory.
//   Only the stitch parameters are in the trainable store: gradients, AdamW state, checkpoints.
// - Stitch kinds alternate backwards from the last stitch, which mixes the experts into the hub.
// - Parallelism: the ranks of one replica form a model group (ParallelGroups::tp) that shares
//   the decoders, decoder t on group rank t mod G; replicas are data parallel (groups.dp). Hidden
//   states move at stitch points only: experts -> hub rank (send/recv) for experts_into_hub, the
//   hub's state broadcast to the group for hub_into_experts, and the matching gradients back.
//   Every rank holds every stitch parameter (TpMode::partial): each is computed on one rank of the
//   group (the hub's for experts_into_hub, an expert's host for hub_into_experts) and the group
//   sum after backward is its gradient, so the trainer's gradient sync needs nothing new.
// - Backward stops at the first stitch: no decoder below it has anything to train, so the first
//   segment keeps no activations. Frozen decoders' MoE auxiliary losses are not in the objective.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/run_config.h"
#include "layers/language_model.h"
#include "layers/model.h"
#include "layers/stitch.h"

namespace moe {

// One of the decoders: where it comes from and its saved config.
struct BtsDecoder {
  std::string name;      // "hub", or the expert's run directory name
  std::string step_dir;  // the committed step directory it is loaded from
  Config config;
};

// An expert's name: its run directory's name (the parent's, for a step directory).
std::string bts_decoder_name(const std::string& dir);
// The names of the experts bts.* keeps (bts.drop removed), in order.
std::vector<std::string> bts_expert_names(const BtsConfig& bts);

// For resuming a BTS run whose experts changed: which stitch parameters (by name) belong to an
// expert that `saved` (the checkpoint's bts section) and `now` do not share. Logs each added and
// dropped expert. Empty when both have the same experts.
MayDiffer bts_changed_parameters(const BtsConfig& saved, const BtsConfig& now);

// What may differ between the checkpoint `dir` and a run of `config`: for model.kind bts, the
// stitch parameters of experts one of them has and the other not (dir must be a BTS run's);
// nothing otherwise.
MayDiffer bts_checkpoint_changes(const std::string& dir, const Config& config);

// The hub and the experts that bts.* selects (bts.drop removed), hub first. A decoder that the
// checkpoint being loaded carries (bts.self_contained: <checkpoint>/decoders/<name>) comes from
// there; the others from their configured directories. Checks that every directory holds a
// committed checkpoint, that names are unique and the shapes compatible.
std::vector<BtsDecoder> resolve_bts_decoders(const BtsConfig& bts,
                                             const std::string& checkpoint = "");
// Where a self-contained BTS checkpoint keeps a decoder: "decoders/<name>" inside the step.
std::string bts_attached_path(const std::string& name);

// The ranks per replica for model.kind bts on `world_size` ranks: world / parallel.dp (dp 0: 1).
int bts_model_group_size(int world_size, const ParallelConfig& parallel);

class BtsModel : public LanguageModel {
 public:
  // groups.tp is the model group, groups.dp the replicas. Declares the stitch parameters in
  // `stitch_store` (the caller allocates it) and loads this rank's decoders; `checkpoint` is the
  // BTS checkpoint about to be loaded, if any (its decoder copies are used).
  BtsModel(const Config& config, ParameterStore& stitch_store, const ParallelGroups& groups,
           const std::string& checkpoint = "");
  ~BtsModel() override;

  ModelOutput forward(const Tensor& inputs, const Tensor& targets, bool keep_for_backward,
                      Stream& stream) override;
  void backward(double loss_scale, Stream& stream) override;
  void begin_step(Communicator*) const override {}
  void end_step(const std::vector<std::vector<int64_t>>&) const override {}
  Tensor full_logits(const Tensor& shard, Stream& stream) const override;
  ParameterCounts parameter_counts() const override;
  double flops_per_token(int64_t seq_len) const override;
  // With bts.self_contained, every decoder by bts_attached_path.
  std::map<std::string, std::string> checkpoint_attachments() const override;

  const std::vector<BtsDecoder>& decoders() const { return decoders_; }
  int host_of(int decoder) const { return decoder % group_size_; }
  int num_stitches() const { return static_cast<int>(stitches_.size()); }
  // Decoder t's frozen parameters (declared everywhere, allocated only where t is local).
  const ParameterStore& decoder_store(int decoder) const;

 private:
  struct Tower;
  bool is_local(int decoder) const { return host_of(decoder) == group_rank_; }
  // Every expert's state on the hub's rank (others: empty).
  std::vector<Tensor> gather_experts(const std::vector<Tensor>& states, Stream& stream) const;
  // The hub's state on every rank of the group.
  Tensor broadcast_hub(const std::vector<Tensor>& states, Stream& stream) const;
  // Adds the hub rank's expert gradients to their hosts' running gradients.
  void scatter_expert_grads(const std::vector<Tensor>& dexperts, std::vector<Tensor>& grads,
                            Stream& stream) const;
  // Sums every rank's gradient contribution for the hub into the hub's running gradient.
  void reduce_hub_grad(Tensor& contribution, std::vector<Tensor>& grads, Stream& stream) const;

  ParameterStore& stitch_store_;
  Communicator* group_;
  int group_rank_, group_size_;
  std::vector<BtsDecoder> decoders_;
  std::vector<std::unique_ptr<Tower>> towers_;  // one per decoder; allocated where local
  std::vector<std::unique_ptr<StitchLayer>> stitches_;
  int64_t stitch_every_ = 1, d_model_ = 0, vocab_ = 0;
  bool self_contained_ = false;

  // What backward needs of one stitch on this rank.
  struct StitchInputs {
    Tensor hub;                      // the hub's state entering the stitch (where a mix ran)
    std::vector<StitchSaved> saved;  // one per mix this rank ran (into the hub, or per expert)
  };
  std::vector<StitchInputs> saved_;  // per stitch, from a forward that keeps activations
  int64_t saved_tokens_ = 0;         // of the last forward's batch
};

}  // namespace moe
