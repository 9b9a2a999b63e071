// Validation loss, shared by the training loop and moe-eval so that both score exactly the same
// tokens, in any layout.
//
// Decisions:
// - One evaluation scores the first train.eval_batches global batches of each validation set
//   (micro_batch_size x grad_accum x dp sequences each; all of the set when it is smaller). The
//   global batch is the same in every layout of a run, so 1 x 8 and 2 x 4 score the same tokens.
// - The data-parallel ranks share them out: rank r scores the contiguous share
//   [r S / dp, (r + 1) S / dp) of the S sequences, micro_batch_size per forward, and the TP ranks
//   of one dp rank score the same share. The loss is the mean over all scored target tokens:
//   each rank's loss sum and token count are summed over dp.
// - Every rank runs the same number of forwards of micro_batch_size rows, since the forward is
//   collective under TP and EP: rows past a rank's share are padding whose targets are
//   ignore_index, so they count for nothing.
// - Expert loads (EvalPlan::expert_loads, for moe-eval --expert-loads): each MoE block's top-k
//   choices of the tokens whose target counts, read from the block's expert ids, so padding rows
//   are routed but not counted. MTP blocks count the same positions as the main model. The counts
//   are summed over dp with the loss; TP ranks route the same tokens and count them once.
#pragma once

#include <vector>

#include "config/run_config.h"
#include "data/token_loader.h"
#include "layers/language_model.h"
#include "parallel/communicator.h"

namespace moe {

struct EvalPlan {
  int64_t sequences = 0;       // per set, before capping at the set's size
  int64_t micro_batch = 1;     // sequences per forward
  Communicator* dp = nullptr;  // the data-parallel group sharing them out (null: one rank)
  bool expert_loads = false;   // also count expert assignments (one host read per forward)
};

// Top-k assignments per expert of each block of ModelOutput::layers (empty for dense blocks).
using ExpertLoads = std::vector<std::vector<int64_t>>;

// The validation sequences of one evaluation: train.eval_batches global batches, the global batch
// being micro_batch_size x grad_accum x dp_size (the dp of the run that trains).
int64_t validation_sequences(const TrainConfig& train, int dp_size);

// Sequences [begin, end) that rank `rank` of `ranks` scores of `sequences`.
struct SequenceRange {
  int64_t begin = 0, end = 0;
};
SequenceRange rank_share(int64_t sequences, int rank, int ranks);

// One set's score over the plan's sequences of it, summed over the dp ranks.
struct SetScore {
  double loss = 0;     // mean per target token; NaN when the set has none
  int64_t tokens = 0;  // the target tokens scored
  ExpertLoads loads;   // over those tokens; empty unless plan.expert_loads
};
SetScore evaluate(LanguageModel& model, const TokenLoader& loader, int set, const EvalPlan& plan,
                  Stream& stream);

// Every validation set's score, in the loader's order, and the mean loss (NaN without sets).
struct ValidationLosses {
  std::vector<double> per_set;
  double mean = 0;
  std::vector<int64_t> tokens;     // per set
  std::vector<ExpertLoads> loads;  // per set (empty loads unless plan.expert_loads)
};
ValidationLosses evaluate_all(LanguageModel& model, const TokenLoader& loader, const EvalPlan& plan,
                              Stream& stream);

}  // namespace moe
