#include "parallel/fssdp/sparse_collectives.h"

#include "core/error.h"
#include "kernels/ops.h"

namespace moe {

static void check_chunks(const ExpertPlan& plan, const std::vector<ExpertChunk>& chunks, int rank,
                         const char* what) {
  MOE_ASSERT(static_cast<int>(chunks.size()) == plan.experts(), what, ": ", chunks.size(),
             " chunks for ", plan.experts(), " experts");
  for (int e = 0; e < plan.experts(); ++e)
    MOE_ASSERT(!plan.holds(e, rank) || !chunks[e].empty(), what, ": rank ", rank, " holds expert ",
               e, " but passed no chunk for it");
}

std::unique_ptr<PendingTransfers> start_sparse_all_gather(const ExpertPlan& plan,
                                                          std::vector<ExpertChunk>& chunks,
                                                          Communicator* comm, Stream& stream) {
  const int rank = group_rank(comm);
  check_chunks(plan, chunks, rank, "sparse_all_gather");
  std::vector<Transfer> sends, recvs;
  for (int e = 0; e < plan.experts(); ++e) {
    const int owner = plan.owner[e];
    for (int holder : plan.holders[e]) {
      if (holder == owner) continue;
      for (const Tensor& t : chunks[e]) {
        if (rank == owner) sends.push_back({holder, t});
        if (rank == holder) recvs.push_back({owner, t});
      }
    }
  }
  if (sends.empty() && recvs.empty()) return nullptr;
  return comm->start_send_recv(sends, recvs, stream);
}

void sparse_all_gather(const ExpertPlan& plan, std::vector<ExpertChunk>& chunks, Communicator* comm,
                       Stream& stream) {
  if (auto pending = start_sparse_all_gather(plan, chunks, comm, stream)) pending->wait();
}

PendingReduce start_sparse_reduce_scatter(const ExpertPlan& plan, std::vector<ExpertChunk>& grads,
                                          Communicator* comm, Stream& stream) {
  const int rank = group_rank(comm);
  check_chunks(plan, grads, rank, "sparse_reduce_scatter");
  std::vector<Transfer> sends, recvs;
  // (owner's tensor, a replica's gradient of it), in expert, then rank order
  std::vector<std::pair<Tensor, Tensor>> received;
  for (int e = 0; e < plan.experts(); ++e) {
    const int owner = plan.owner[e];
    for (int holder : plan.holders[e]) {
      if (holder == owner) continue;
      for (const Tensor& t : grads[e]) {
        if (rank == holder) sends.push_back({owner, t});
        if (rank == owner) {
          received.emplace_back(t, Tensor::empty(t.shape(), t.dtype(), t.device()));
          recvs.push_back({holder, received.back().second});
        }
      }
    }
  }
  if (sends.empty() && recvs.empty()) return {};
  return {comm->start_send_recv(sends, recvs, stream), std::move(received)};
}

void PendingReduce::finish(Stream& stream) {
  if (!transfers_) return;
  transfers_->wait();
  transfers_.reset();
  for (auto& [own, gradient] : received_) ops::add(own, gradient, own, stream);
  received_.clear();
}

void sparse_reduce_scatter(const ExpertPlan& plan, std::vector<ExpertChunk>& grads,
                           Communicator* comm, Stream& stream) {
  start_sparse_reduce_scatter(plan, grads, comm, stream).finish(stream);
}

}  // namespace moe
