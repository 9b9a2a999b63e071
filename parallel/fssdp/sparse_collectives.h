// Hecate's two sparse collectives (METHODS.md §1.3) over an ExpertPlan, one chunk per expert: the
// tensors of its parameters, or of its gradient (the same number and sizes on every holder):
// - sparse_all_gather: every holder of an expert gets the owner's chunk, bit for bit;
// - sparse_reduce_scatter: the owner's gradient chunk gets every replica's added to it.
// Only the experts with replicas move; an expert held by its owner alone costs nothing.
//
// Decisions:
// - Grouped point-to-point (Communicator::send_recv), not per-expert broadcast/reduce: those
//   would need a communicator per holder set. Every rank posts its transfers in expert order and
//   then holder order, from the same plan, so the pairs match and nothing deadlocks.
// - The reduce is deterministic: the owner receives each replica's gradient into its own buffer
//   and adds them to its own in increasing rank order, whatever order they arrive in.
// - A replica that got no tokens still sends its (zero) gradient: the plan, not the data, decides
//   who talks to whom, so all ranks agree on it without an extra exchange.
// - The byte counts are the communicator's (send_recv: what this rank sends to others).
// - Both can run behind other work (start_*): MoE layers start gathering their copies in forward
//   before they need them (during attention when the plan is known before routing, else during
//   the token dispatch and the owned experts' GEMMs), and start their copies' reduce in backward
//   and finish it when the next transfer or the optimizer needs it.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "parallel/fssdp/expert_plan.h"
#include "parallel/parallel_groups.h"

namespace moe {

using ExpertChunk = std::vector<Tensor>;

// chunks[e]: where this rank holds e, its chunk (the owner's: the source; a replica's: written);
// elsewhere ignored. comm: the ranks of the plan (null: one rank, nothing moves).
void sparse_all_gather(const ExpertPlan& plan, std::vector<ExpertChunk>& chunks, Communicator* comm,
                       Stream& stream);

// The same, started: the transfers are posted, and the copies are written once the returned
// transfers are waited for (nullptr: nothing moves). Until then the owners' chunks must stay as
// they are, and no other send_recv may be started between the same ranks (collectives may run).
std::unique_ptr<PendingTransfers> start_sparse_all_gather(const ExpertPlan& plan,
                                                          std::vector<ExpertChunk>& chunks,
                                                          Communicator* comm, Stream& stream);

// grads[e]: where this rank holds e, its gradient for e. The owner's becomes its own plus every
// replica's (in rank order); the replicas' are left as they were.
void sparse_reduce_scatter(const ExpertPlan& plan, std::vector<ExpertChunk>& grads,
                           Communicator* comm, Stream& stream);

// The same, started: the transfers are posted, and finish() waits for them and adds what arrived.
// Until then the gradients must stay as they are, and no other transfer may be started between
// the same ranks.
class PendingReduce {
 public:
  PendingReduce() = default;  // nothing pending
  PendingReduce(std::unique_ptr<PendingTransfers> transfers,
                std::vector<std::pair<Tensor, Tensor>> received)
      : transfers_(std::move(transfers)), received_(std::move(received)) {}
  bool pending() const { return transfers_ != nullptr; }
  void finish(Stream& stream);

 private:
  std::unique_ptr<PendingTransfers> transfers_;
  std::vector<std::pair<Tensor, Tensor>> received_;  // (owner's gradient, a replica's)
};

PendingReduce start_sparse_reduce_scatter(const ExpertPlan& plan, std::vector<ExpertChunk>& grads,
                                          Communicator* comm, Stream& stream);

}  // namespace moe
