// MpiCommunicator: the Communicator over an MPI communicator, for host tensors.
//
// Decisions:
// - It owns its MPI_Comm (a duplicate of MPI_COMM_WORLD, or the result of split) and frees it in
//   the destructor, so its traffic never mixes with anyone else's. The owned communicator's error
//   handler is MPI_ERRORS_RETURN: a failed call throws CommError (MOE_MPI_CHECK) instead of
//   aborting inside MPI.
// - Host tensors only; a device tensor is an InputError (the NCCL communicator handles those).
// - Reductions (all_reduce, reduce_scatter) map f32, f64, i32, i64 to MPI types; bf16/f16 have no
//   MPI reduction and are rejected. Moves (all_gather, all_to_all_v, broadcast) copy bytes, so any
//   dtype works; they count in a contiguous MPI datatype of one row, so int counts and
//   displacements count rows, not bytes, and do not overflow for tensors over 2 GiB.
// - Every argument is checked before the first MPI call, from local values only. A bad call thus
//   throws on every rank that makes it, and none is left waiting inside a collective.
// - all_gather is in place when `in` is this rank's block of `out` (MPI_IN_PLACE).
// - Each method is timed in the op profile as comm_<collective> (ops::OpProfileScope; one branch
//   when profiling is off): the time spent in the call, waiting for slower ranks included.
//   start_send_recv is timed as comm_send_recv_start (posting) and comm_send_recv_wait (the wait),
//   so the profile tells the time communication was hidden from the time it was waited for.
// - send_recv posts nonblocking sends and receives and waits for them at once; start_send_recv
//   returns them posted. Pending transfers progress whenever this process is inside MPI.
#pragma once

#include <mpi.h>

#include "parallel/communicator.h"

namespace moe {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm);  // takes ownership of comm
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm comm() const { return comm_; }

  void all_reduce(Tensor& x, ReduceOp op, Stream& stream) override;
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op, Stream& stream) override;
  void all_gather(const Tensor& in, Tensor& out, Stream& stream) override;
  void all_to_all_v(const Tensor& in, const std::vector<int64_t>& send_rows, Tensor& out,
                    const std::vector<int64_t>& recv_rows, Stream& stream) override;
  std::vector<int64_t> exchange_counts(const std::vector<int64_t>& send) override;
  void send_recv(const std::vector<Transfer>& sends, const std::vector<Transfer>& recvs,
                 Stream& stream) override;
  std::unique_ptr<PendingTransfers> start_send_recv(const std::vector<Transfer>& sends,
                                                    const std::vector<Transfer>& recvs,
                                                    Stream& stream) override;
  void broadcast(Tensor& x, int root, Stream& stream) override;
  void barrier() override;
  std::unique_ptr<Communicator> split(int color, int key) override;

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

// How many ranks of `group` share each node, when every node holds the same number of them and
// they are consecutive in the group (as mpirun and srun place ranks by default); 0 otherwise, or
// when the group is not an MPI one. Collective over the group.
int ranks_per_node(Communicator& group);

// This rank's position among the ranks of `group` on its node (0 when the group is not an MPI one):
// the GPU a rank uses is this modulo the node's GPUs. Collective over the group.
int node_local_rank(Communicator& group);

// Ends every rank of the MPI job with `status` (MPI_Abort on MPI_COMM_WORLD), or this process alone
// when MPI is not running. Callable from any thread, also while another one waits in a collective.
[[noreturn]] void abort_job(int status);

}  // namespace moe
