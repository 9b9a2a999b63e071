// NcclCommunicator: the Communicator over NCCL, for tensors on one CUDA device per rank.
//
// Decisions:
// - Bootstrapped over MPI: rank 0 of the group makes the unique id, MPI broadcasts it, every rank
//   joins on its own device. The MPI communicator of the same ranks is kept for what lives on the
//   host (exchange_counts, barrier, host()) and to split.
// - all_to_all_v and send_recv are grouped ncclSend/ncclRecv (NCCL has no all-to-all-v), moved as
//   bytes, so any dtype works; reductions take f32, f64, bf16, f16, i32 and i64.
// - Even a one-rank communicator makes its NCCL calls (NCCL handles one rank), so a machine with
// one
//   GPU exercises every call; volume() still counts nothing for it, as the contract says.
// - Collectives are enqueued on the given stream and return before they finish, as every device op
//   does; reading a result on the host goes through ops::copy on the same stream.
// - Arguments are checked first, with the same rules and messages as MPI (collective_checks.h),
//   plus: every tensor must be on this communicator's device.
// - start_send_recv overlaps (FSSDP's copies) once enable_overlapped_transfers() has made a
//   transfer stream and a second NCCL communicator of the same ranks: NCCL orders one
//   communicator's operations across streams, so on the same one the token all-to-all would wait
//   for the copies. The transfer stream waits for an event recorded on the caller's stream when
//   the transfers start, and wait() makes the caller's stream wait for their event; the host does
//   not block. The pending transfers hold every tensor until wait(), so none returns to the
//   caching allocator (one stream per device) while the transfer stream may still use it. Work
//   on other streams (the default stream's uploads) is not ordered after the transfers: every
//   transfer is waited for within its step (forward, or FssdpCoordinator::finish_pending).
//   MOE_NCCL_OVERLAP=0 keeps the transfers on the caller's stream.
#pragma once

#include <memory>

#include <nccl.h>

#include "parallel/mpi_communicator.h"

namespace moe {

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> group, Device device);  // collective
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return group_->rank(); }
  int size() const override { return group_->size(); }
  Device device() const { return device_; }

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
  void enable_overlapped_transfers() override;
  void broadcast(Tensor& x, int root, Stream& stream) override;
  void barrier() override;
  std::unique_ptr<Communicator> split(int color, int key) override;
  Communicator& host() override { return *group_; }

 private:
  void expect_here(const char* op, const char* arg, const Tensor& t) const;
  // Checks the transfers and posts them as one group on `comm` and `stream`.
  void post_send_recv(const std::vector<Transfer>& sends, const std::vector<Transfer>& recvs,
                      ncclComm_t comm, void* stream);

  std::unique_ptr<MpiCommunicator> group_;
  Device device_;
  ncclComm_t comm_ = nullptr;
  ncclComm_t transfer_comm_ = nullptr;  // enable_overlapped_transfers
  void* transfer_stream_ = nullptr;     // a cudaStream_t
};

}  // namespace moe
