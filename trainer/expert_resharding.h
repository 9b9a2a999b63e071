// FSSDP resharding in training (Hecate's Algorithm 2, METHODS.md §1.5): every
// fssdp.reshard_interval steps the coordinator proposes owners for the predicted loads
// (parallel/fssdp/resharding.h); when they differ, each expert whose owner changes moves to its
// new owner with its AdamW moments, and the row-placed expert parameters are laid out again.
//
// Decisions:
// - Between optimizer steps only: gradients are zero then, so parameters and moments are the
//   whole state. The ParameterStore keeps its size (every rank owns as many experts as before),
//   so the arenas and the optimizer's moment buffers stay; only their contents are rearranged.
// - One grouped send/recv over the FSSDP group carries every moving expert's rows (three weights,
//   each with value and two moments), in (layer, expert, weight) order on both sides. With
//   expert_tp each TP rank moves its slice of the experts over its own FSSDP group.
#pragma once

#include <vector>

#include "layers/language_model.h"
#include "trainer/optimizer.h"

namespace moe {

// Moves the experts of `model` (FSSDP) to `owners` ([layer * experts + expert], as
// FssdpCoordinator::owners), which must give every rank as many experts as it has; collective over
// the FSSDP group. Returns how many experts moved.
int reshard_experts(LanguageModel& model, ParameterStore& store, AdamW& optimizer,
                    const std::vector<int>& owners, Stream& stream);

// At the end of step `step` (from 0): reshards when fssdp.reshard_interval says so and the
// proposed owners differ. Returns how many experts moved (0 without FSSDP).
int maybe_reshard_experts(LanguageModel& model, ParameterStore& store, AdamW& optimizer,
                          int64_t step, Stream& stream);

}  // namespace moe
