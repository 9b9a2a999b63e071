// NcclCommunicator: one NCCL call (or one group of sends and receives) per method; design
// decisions in nccl_communicator.h.
#include "parallel/nccl_communicator.h"

#include <cuda_runtime.h>

#include <cstdlib>
#include <exception>
#include <string>

#include "kernels/cuda/cuda_check.h"
#include "parallel/collective_checks.h"
#include "parallel/mpi_check.h"
#include "parallel/nccl_check.h"

namespace moe {

using collective::row_bytes;

namespace {

ncclDataType_t nccl_type(const char* op, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::bf16:
      return ncclBfloat16;
    case DType::f16:
      return ncclFloat16;
    case DType::i32:
      return ncclInt32;
    case DType::i64:
      return ncclInt64;
  }
  MOE_THROW(InternalError, op, ": unknown dtype ", static_cast<int>(dtype));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::max:
      return ncclMax;
    case ReduceOp::min:
      return ncclMin;
  }
  MOE_THROW(InternalError, "unknown ReduceOp ", static_cast<int>(op));
}

cudaStream_t stream_of(Stream& stream) { return static_cast<cudaStream_t>(stream.handle); }

char* bytes_at(const Tensor& t, int64_t offset) { return static_cast<char*>(t.raw()) + offset; }

// A new NCCL communicator of the ranks of `group`: rank 0 makes the unique id, MPI broadcasts it.
ncclComm_t join(MpiCommunicator& group) {
  ncclUniqueId id{};
  if (group.rank() == 0) MOE_NCCL_CHECK(ncclGetUniqueId(&id));
  MOE_MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, group.comm()));
  ncclComm_t comm = nullptr;
  MOE_NCCL_CHECK(ncclCommInitRank(&comm, group.size(), id, group.rank()));
  return comm;
}

// Unwinding after an error: the peers may sit in a collective this rank never joins, and
// ncclCommDestroy would wait for them; aborting lets the error reach MPI_Abort. Called from a
// destructor, which cannot throw, so the results are not checked.
void leave(ncclComm_t comm) {
  if (!comm) return;
  if (std::uncaught_exceptions() > 0)
    ncclCommAbort(comm);
  else
    ncclCommDestroy(comm);
}

// Transfers on the communicator's transfer stream: wait() orders the caller's stream after them.
// Holds the tensors (handles) until then.
class NcclPendingTransfers final : public PendingTransfers {
 public:
  NcclPendingTransfers(std::vector<Transfer> sends, std::vector<Transfer> recvs,
                       cudaStream_t caller)
      : sends_(std::move(sends)), recvs_(std::move(recvs)), caller_(caller) {
    MOE_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  }
  NcclPendingTransfers(const NcclPendingTransfers&) = delete;
  NcclPendingTransfers& operator=(const NcclPendingTransfers&) = delete;
  // Orders the caller's stream after the transfers even while unwinding (it never blocks the
  // host), so no tensor returns to the caching allocator early; unchecked: it cannot throw.
  ~NcclPendingTransfers() override {
    if (!done_) return;
    cudaStreamWaitEvent(caller_, done_, 0);
    cudaEventDestroy(done_);
  }
  cudaEvent_t done() const { return done_; }
  void wait() override {
    if (!done_) return;
    MOE_CUDA_CHECK(cudaStreamWaitEvent(caller_, done_, 0));
    MOE_CUDA_CHECK(cudaEventDestroy(done_));
    done_ = nullptr;
    sends_.clear();  // the caller's stream now orders any reuse of their memory after the moves
    recvs_.clear();
  }

 private:
  std::vector<Transfer> sends_, recvs_;
  cudaStream_t caller_;
  cudaEvent_t done_ = nullptr;
};

// Sends and receives posted between ncclGroupStart and ncclGroupEnd, so none waits for another.
class Group {
 public:
  Group() { MOE_NCCL_CHECK(ncclGroupStart()); }
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
  // An exception between start and end leaves the group open: ending it would launch the
  // transfers posted so far, which the peers never match; the job aborts instead.
  ~Group() = default;
  void end() { MOE_NCCL_CHECK(ncclGroupEnd()); }
};

}  // namespace

NcclCommunicator::NcclCommunicator(std::unique_ptr<MpiCommunicator> group, Device device)
    : group_(std::move(group)), device_(device) {
  MOE_CHECK(device_.is_cuda(), "NcclCommunicator needs a CUDA device, got ", device_.str());
  MOE_CHECK(cudaSetDevice(device_.index) == cudaSuccess, "rank ", group_->rank(), ": cannot use ",
            device_.str(), " (", cudaGetErrorString(cudaGetLastError()), ")");
  comm_ = join(*group_);
}

NcclCommunicator::~NcclCommunicator() {
  leave(transfer_comm_);
  leave(comm_);
  if (transfer_stream_) cudaStreamDestroy(static_cast<cudaStream_t>(transfer_stream_));
}

void NcclCommunicator::enable_overlapped_transfers() {
  if (transfer_comm_) return;
  const char* off = std::getenv("MOE_NCCL_OVERLAP");
  if (off && std::string(off) == "0") return;  // the same-stream path, for comparison
  MOE_CUDA_CHECK(cudaSetDevice(device_.index));
  transfer_comm_ = join(*group_);
  cudaStream_t stream = nullptr;
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  transfer_stream_ = stream;
  // NCCL connects each pair of ranks on its first transfer, allocating device memory; one byte to
  // and from every rank now keeps that out of a step, where the main communicator's kernels run.
  void* bytes = nullptr;
  MOE_CUDA_CHECK(cudaMalloc(&bytes, 2 * static_cast<size_t>(size())));
  Group group;
  for (int peer = 0; peer < size(); ++peer) {
    MOE_NCCL_CHECK(
        ncclRecv(static_cast<char*>(bytes) + peer, 1, ncclUint8, peer, transfer_comm_, stream));
    MOE_NCCL_CHECK(ncclSend(static_cast<char*>(bytes) + size() + peer, 1, ncclUint8, peer,
                            transfer_comm_, stream));
  }
  group.end();
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream));
  MOE_CUDA_CHECK(cudaFree(bytes));
}

void NcclCommunicator::expect_here(const char* op, const char* arg, const Tensor& t) const {
  MOE_CHECK(t.defined(), op, ": '", arg, "' is an undefined tensor");
  MOE_CHECK(t.device() == device_, op, ": '", arg, "' is ", t.str(),
            ", but this NCCL communicator works on tensors on ", device_.str());
}

void NcclCommunicator::all_reduce(Tensor& x, ReduceOp op, Stream& stream) {
  expect_here("all_reduce", "x", x);
  MOE_NCCL_CHECK(ncclAllReduce(x.raw(), x.raw(), static_cast<size_t>(x.numel()),
                               nccl_type("all_reduce", x.dtype()), nccl_op(op), comm_,
                               stream_of(stream)));
  if (size() > 1) count(Collective::all_reduce, static_cast<int64_t>(x.nbytes()));
}

void NcclCommunicator::reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op, Stream& stream) {
  expect_here("reduce_scatter", "in", in);
  expect_here("reduce_scatter", "out", out);
  collective::check_reduce_scatter(in, out, size());
  MOE_NCCL_CHECK(ncclReduceScatter(in.raw(), out.raw(), static_cast<size_t>(out.numel()),
                                   nccl_type("reduce_scatter", in.dtype()), nccl_op(op), comm_,
                                   stream_of(stream)));
  if (size() > 1) count(Collective::reduce_scatter, static_cast<int64_t>(in.nbytes()));
}

void NcclCommunicator::all_gather(const Tensor& in, Tensor& out, Stream& stream) {
  expect_here("all_gather", "in", in);
  expect_here("all_gather", "out", out);
  collective::check_all_gather(in, out, size(), rank());  // NCCL detects in place by itself
  MOE_NCCL_CHECK(
      ncclAllGather(in.raw(), out.raw(), in.nbytes(), ncclUint8, comm_, stream_of(stream)));
  if (size() > 1) count(Collective::all_gather, static_cast<int64_t>(in.nbytes()));
}

void NcclCommunicator::all_to_all_v(const Tensor& in, const std::vector<int64_t>& send_rows,
                                    Tensor& out, const std::vector<int64_t>& recv_rows,
                                    Stream& stream) {
  expect_here("all_to_all_v", "in", in);
  expect_here("all_to_all_v", "out", out);
  collective::check_all_to_all_v(in, send_rows, out, recv_rows, size(), rank());
  const int64_t row = row_bytes(in);
  Group group;
  int64_t send_offset = 0, recv_offset = 0, sent_rows = 0;
  for (int peer = 0; peer < size(); ++peer) {
    if (send_rows[peer] > 0)
      MOE_NCCL_CHECK(ncclSend(bytes_at(in, send_offset * row), send_rows[peer] * row, ncclUint8,
                              peer, comm_, stream_of(stream)));
    if (recv_rows[peer] > 0)
      MOE_NCCL_CHECK(ncclRecv(bytes_at(out, recv_offset * row), recv_rows[peer] * row, ncclUint8,
                              peer, comm_, stream_of(stream)));
    send_offset += send_rows[peer];
    recv_offset += recv_rows[peer];
    if (peer != rank()) sent_rows += send_rows[peer];
  }
  group.end();
  count(Collective::all_to_all, sent_rows * row);
}

std::vector<int64_t> NcclCommunicator::exchange_counts(const std::vector<int64_t>& send) {
  collective::check_exchange_counts(send, size());
  std::vector<int64_t> recv = group_->exchange_counts(send);
  if (size() > 1)
    count(Collective::all_to_all, static_cast<int64_t>(sizeof(int64_t)) * (size() - 1));
  return recv;
}

void NcclCommunicator::post_send_recv(const std::vector<Transfer>& sends,
                                      const std::vector<Transfer>& recvs, ncclComm_t comm,
                                      void* stream) {
  const char* name = "send_recv";
  for (const std::vector<Transfer>* list : {&recvs, &sends})
    for (const Transfer& t : *list) {
      expect_here(name, list == &sends ? "a sent tensor" : "a received tensor", t.tensor);
      collective::check_peer(name, t.peer, size());
    }
  const auto on = static_cast<cudaStream_t>(stream);
  Group group;
  for (const Transfer& t : recvs)
    MOE_NCCL_CHECK(ncclRecv(t.tensor.raw(), t.tensor.nbytes(), ncclUint8, t.peer, comm, on));
  for (const Transfer& t : sends)
    MOE_NCCL_CHECK(ncclSend(t.tensor.raw(), t.tensor.nbytes(), ncclUint8, t.peer, comm, on));
  group.end();
  count_sends(sends);
}

void NcclCommunicator::send_recv(const std::vector<Transfer>& sends,
                                 const std::vector<Transfer>& recvs, Stream& stream) {
  post_send_recv(sends, recvs, comm_, stream.handle);
}

// Events are made on the current device, this communicator's: one thread per rank and device.
std::unique_ptr<PendingTransfers> NcclCommunicator::start_send_recv(
    const std::vector<Transfer>& sends, const std::vector<Transfer>& recvs, Stream& stream) {
  if (!transfer_comm_) return Communicator::start_send_recv(sends, recvs, stream);
  const cudaStream_t caller = stream_of(stream);
  const auto transfers = static_cast<cudaStream_t>(transfer_stream_);
  cudaEvent_t ready = nullptr;  // everything the caller's stream did before, such as the writes
  MOE_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  MOE_CUDA_CHECK(cudaEventRecord(ready, caller));
  MOE_CUDA_CHECK(cudaStreamWaitEvent(transfers, ready, 0));
  MOE_CUDA_CHECK(cudaEventDestroy(ready));  // released once recorded work completes
  auto pending = std::make_unique<NcclPendingTransfers>(sends, recvs, caller);
  post_send_recv(sends, recvs, transfer_comm_, transfer_stream_);
  MOE_CUDA_CHECK(cudaEventRecord(pending->done(), transfers));
  return pending;
}

void NcclCommunicator::broadcast(Tensor& x, int root, Stream& stream) {
  expect_here("broadcast", "x", x);
  collective::check_root("broadcast", root, size());
  MOE_NCCL_CHECK(
      ncclBroadcast(x.raw(), x.raw(), x.nbytes(), ncclUint8, root, comm_, stream_of(stream)));
  if (size() > 1 && rank() == root) count(Collective::broadcast, static_cast<int64_t>(x.nbytes()));
}

void NcclCommunicator::barrier() { group_->barrier(); }

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  std::unique_ptr<Communicator> sub = group_->split(color, key);  // checks the color
  auto* mpi = static_cast<MpiCommunicator*>(sub.release());
  return std::make_unique<NcclCommunicator>(std::unique_ptr<MpiCommunicator>(mpi), device_);
}

std::unique_ptr<Communicator> nccl_world_communicator(Device device) {
  MPI_Comm world = MPI_COMM_NULL;
  MOE_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &world));
  return std::make_unique<NcclCommunicator>(std::make_unique<MpiCommunicator>(world), device);
}

}  // namespace moe
