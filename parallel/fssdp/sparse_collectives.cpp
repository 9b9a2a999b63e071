#include "parallel/fssdp/sparse_collectives.h"

#include "core/error.h"
#include "kernels/ops.h"

namespace moe {

static void check_chunks(const ExpertPlan& plan, const std::vector<Tensor>& chunks, int rank,
                         const char* what) {
  MOE_ASSERT(static_cast<int>(chunks.size()) == plan.experts(), what, ": ", chunks.size(),
             " chunks for ", plan.experts(), " experts");
  for (int e = 0; e < plan.experts(); ++e)
    MOE_ASSERT(!plan.holds(e, rank) || chunks[e].defined(), what, ": rank ", rank, " holds expert ",
               e, " but passed no chunk for it");
}

void sparse_all_gather(const ExpertPlan& plan, std::vector<Tensor>& chunks, Communicator* comm,
                       Stream& stream) {
  const int rank = group_rank(comm);
  check_chunks(plan, chunks, rank, "sparse_all_gather");
  std::vector<Transfer> sends, recvs;
  for (int e = 0; e < plan.experts(); ++e) {
    const int owner = plan.owner[e];
    for (int holder : plan.holders[e]) {
      if (holder == owner) continue;
      if (rank == owner) sends.push_back({holder, chunks[e]});
      if (rank == holder) recvs.push_back({owner, chunks[e]});
    }
  }
  if (!sends.empty() || !recvs.empty()) comm->send_recv(sends, recvs, stream);
}

void sparse_reduce_scatter(const ExpertPlan& plan, std::vector<Tensor>& grads, Communicator* comm,
                           Stream& stream) {
  const int rank = group_rank(comm);
  check_chunks(plan, grads, rank, "sparse_reduce_scatter");
  std::vector<Transfer> sends, recvs;
  std::vector<std::pair<int, Tensor>> received;  // (expert, a replica's gradient), in rank order
  for (int e = 0; e < plan.experts(); ++e) {
    const int owner = plan.owner[e];
    for (int holder : plan.holders[e]) {
      if (holder == owner) continue;
      if (rank == holder) sends.push_back({owner, grads[e]});
      if (rank == owner) {
        received.emplace_back(e, Tensor::empty(grads[e].shape(), grads[e].dtype()));
        recvs.push_back({holder, received.back().second});
      }
    }
  }
  if (!sends.empty() || !recvs.empty()) comm->send_recv(sends, recvs, stream);
  for (auto& [e, gradient] : received) ops::add(grads[e], gradient, grads[e], stream);
}

}  // namespace moe
