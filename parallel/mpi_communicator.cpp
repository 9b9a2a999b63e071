// MpiCommunicator: one MPI collective per method, and nonblocking sends and receives awaited
// together for send_recv (design decisions in mpi_communicator.h).
// Each method checks its arguments, returns early on a communicator of one rank (copying in to out
// where they differ), then makes exactly one collective call.
#include "parallel/mpi_communicator.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "kernels/op_profile.h"
#include "parallel/collective_checks.h"
#include "parallel/mpi_check.h"

namespace moe {

using collective::row_bytes;
using collective::rows_of;

namespace {

void expect_host(const char* op, const char* arg, const Tensor& t) {
  MOE_CHECK(t.defined(), op, ": '", arg, "' is an undefined tensor");
  MOE_CHECK(t.is_cpu() || device_memory_is_host(), op, ": '", arg, "' is ", t.str(),
            ", but the MPI communicator works on host tensors only");
}

int as_int(const char* op, const char* what, int64_t value) {
  MOE_CHECK(value <= std::numeric_limits<int>::max(), op, ": ", what, " = ", value,
            " exceeds the int range of MPI counts");
  return static_cast<int>(value);
}

MPI_Datatype reduction_type(const char* op, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::i32:
      return MPI_INT32_T;
    case DType::i64:
      return MPI_INT64_T;
    default:
      MOE_THROW(InputError, op, ": dtype ", dtype_name(dtype),
                " cannot be reduced over MPI (supported: f32, f64, i32, i64)");
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return MPI_SUM;
    case ReduceOp::max:
      return MPI_MAX;
    case ReduceOp::min:
      return MPI_MIN;
  }
  MOE_THROW(InternalError, "unknown ReduceOp ", static_cast<int>(op));
}

void copy_bytes(const Tensor& in, Tensor& out) {
  if (in.nbytes() && in.raw() != out.raw()) std::memcpy(out.raw(), in.raw(), in.nbytes());
}

// A contiguous MPI datatype of one row, freed when it goes out of scope.
class RowType {
 public:
  RowType(const char* op, int64_t bytes) {
    MOE_MPI_CHECK(MPI_Type_contiguous(as_int(op, "row size in bytes", bytes), MPI_BYTE, &type_));
    MOE_MPI_CHECK(MPI_Type_commit(&type_));
  }
  ~RowType() { MPI_Type_free(&type_); }
  RowType(const RowType&) = delete;
  RowType& operator=(const RowType&) = delete;
  MPI_Datatype get() const { return type_; }

 private:
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
};

// Row counts and displacements in MPI's int, in units of one row.
void to_mpi_counts(const std::vector<int64_t>& rows, std::vector<int>& counts,
                   std::vector<int>& displs) {
  counts.resize(rows.size());
  displs.resize(rows.size());
  int offset = 0;
  for (size_t p = 0; p < rows.size(); ++p) {
    counts[p] = static_cast<int>(rows[p]);
    displs[p] = offset;
    offset += counts[p];
  }
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  MOE_ASSERT(comm_ != MPI_COMM_NULL, "MpiCommunicator needs a valid MPI communicator");
  MOE_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  MOE_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MOE_MPI_CHECK(MPI_Comm_size(comm_, &size_));
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);  // a destructor cannot throw, so the code is not checked
}

void MpiCommunicator::all_reduce(Tensor& x, ReduceOp op, Stream&) {
  const ops::OpProfileScope profile("comm_all_reduce");
  expect_host("all_reduce", "x", x);
  const MPI_Datatype type = reduction_type("all_reduce", x.dtype());
  const int count = as_int("all_reduce", "element count", x.numel());
  if (size_ == 1) return;
  MOE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, x.raw(), count, type, mpi_op(op), comm_));
  this->count(Collective::all_reduce, static_cast<int64_t>(x.nbytes()));
}

void MpiCommunicator::reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op, Stream&) {
  const ops::OpProfileScope profile("comm_reduce_scatter");
  const char* name = "reduce_scatter";
  expect_host(name, "in", in);
  expect_host(name, "out", out);
  collective::check_reduce_scatter(in, out, size_);
  const MPI_Datatype type = reduction_type(name, in.dtype());
  const int count = as_int(name, "block element count", out.numel());
  if (size_ == 1) return copy_bytes(in, out);
  MOE_MPI_CHECK(MPI_Reduce_scatter_block(in.raw(), out.raw(), count, type, mpi_op(op), comm_));
  this->count(Collective::reduce_scatter, static_cast<int64_t>(in.nbytes()));
}

void MpiCommunicator::all_gather(const Tensor& in, Tensor& out, Stream&) {
  const ops::OpProfileScope profile("comm_all_gather");
  const char* name = "all_gather";
  expect_host(name, "in", in);
  expect_host(name, "out", out);
  const bool in_place = collective::check_all_gather(in, out, size_, rank_);
  const size_t block_bytes = in.nbytes();
  const int rows = as_int(name, "rows of 'in'", in.dim(0));
  if (size_ == 1) return copy_bytes(in, out);
  const RowType row(name, row_bytes(in));
  MOE_MPI_CHECK(MPI_Allgather(in_place ? MPI_IN_PLACE : in.raw(), rows, row.get(), out.raw(), rows,
                              row.get(), comm_));
  count(Collective::all_gather, static_cast<int64_t>(block_bytes));
}

void MpiCommunicator::all_to_all_v(const Tensor& in, const std::vector<int64_t>& send_rows,
                                   Tensor& out, const std::vector<int64_t>& recv_rows, Stream&) {
  const ops::OpProfileScope profile("comm_all_to_all");
  const char* name = "all_to_all_v";
  expect_host(name, "in", in);
  expect_host(name, "out", out);
  collective::check_all_to_all_v(in, send_rows, out, recv_rows, size_, rank_);
  as_int(name, "rows of 'in'", in.dim(0));
  as_int(name, "rows of 'out'", out.dim(0));
  if (size_ == 1) return copy_bytes(in, out);
  std::vector<int> send_counts, send_displs, recv_counts, recv_displs;
  to_mpi_counts(send_rows, send_counts, send_displs);
  to_mpi_counts(recv_rows, recv_counts, recv_displs);
  const RowType row(name, row_bytes(in));
  MOE_MPI_CHECK(MPI_Alltoallv(in.raw(), send_counts.data(), send_displs.data(), row.get(),
                              out.raw(), recv_counts.data(), recv_displs.data(), row.get(), comm_));
  int64_t sent_rows = 0;
  for (int p = 0; p < size_; ++p) sent_rows += p == rank_ ? 0 : send_rows[p];
  count(Collective::all_to_all, sent_rows * row_bytes(in));
}

std::vector<int64_t> MpiCommunicator::exchange_counts(const std::vector<int64_t>& send) {
  const ops::OpProfileScope profile("comm_exchange_counts");
  collective::check_exchange_counts(send, size_);
  if (size_ == 1) return send;
  std::vector<int64_t> recv(send.size());
  MOE_MPI_CHECK(MPI_Alltoall(send.data(), 1, MPI_INT64_T, recv.data(), 1, MPI_INT64_T, comm_));
  count(Collective::all_to_all, static_cast<int64_t>(sizeof(int64_t)) * (size_ - 1));
  return recv;
}

namespace {

// Posted sends and receives, and the row types they use, until they complete.
class MpiPendingTransfers final : public PendingTransfers {
 public:
  MpiPendingTransfers(MpiCommunicator& comm, const std::vector<Transfer>& sends,
                      const std::vector<Transfer>& recvs)
      : sends_(sends), recvs_(recvs) {
    const char* name = "send_recv";
    for (const std::vector<Transfer>* list : {&recvs, &sends})
      for (const Transfer& t : *list) {
        expect_host(name, list == &sends ? "a sent tensor" : "a received tensor", t.tensor);
        collective::check_peer(name, t.peer, comm.size());
        as_int(name, "rows of a transferred tensor", rows_of(t.tensor));
      }
    auto post = [&](const Transfer& t, bool send) {
      types_.push_back(std::make_unique<RowType>(name, row_bytes(t.tensor)));
      MPI_Request request = MPI_REQUEST_NULL;
      const int rows = static_cast<int>(rows_of(t.tensor));
      if (send)
        MOE_MPI_CHECK(MPI_Isend(t.tensor.raw(), rows, types_.back()->get(), t.peer, 0, comm.comm(),
                                &request));
      else
        MOE_MPI_CHECK(MPI_Irecv(t.tensor.raw(), rows, types_.back()->get(), t.peer, 0, comm.comm(),
                                &request));
      requests_.push_back(request);
    };
    for (const Transfer& t : recvs) post(t, false);
    for (const Transfer& t : sends) post(t, true);
  }
  ~MpiPendingTransfers() override {
    if (!requests_.empty())
      MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  }
  void wait() override {
    const ops::OpProfileScope profile("comm_send_recv_wait");
    complete();
  }
  void complete() {
    std::vector<MPI_Request> requests;
    requests.swap(requests_);
    MOE_MPI_CHECK(
        MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
  }

 private:
  std::vector<Transfer> sends_, recvs_;  // the tensors stay alive until the transfers end
  std::vector<std::unique_ptr<RowType>> types_;
  std::vector<MPI_Request> requests_;
};

}  // namespace

std::unique_ptr<PendingTransfers> MpiCommunicator::start_send_recv(
    const std::vector<Transfer>& sends, const std::vector<Transfer>& recvs, Stream&) {
  const ops::OpProfileScope profile("comm_send_recv_start");
  auto pending = std::make_unique<MpiPendingTransfers>(*this, sends, recvs);
  count_sends(sends);
  return pending;
}

void MpiCommunicator::send_recv(const std::vector<Transfer>& sends,
                                const std::vector<Transfer>& recvs, Stream&) {
  const ops::OpProfileScope profile("comm_send_recv");
  MpiPendingTransfers(*this, sends, recvs).complete();
  count_sends(sends);
}

void MpiCommunicator::broadcast(Tensor& x, int root, Stream&) {
  const ops::OpProfileScope profile("comm_broadcast");
  expect_host("broadcast", "x", x);
  collective::check_root("broadcast", root, size_);
  const int rows = as_int("broadcast", "rows of 'x'", rows_of(x));
  if (size_ == 1) return;
  const RowType row("broadcast", row_bytes(x));
  MOE_MPI_CHECK(MPI_Bcast(x.raw(), rows, row.get(), root, comm_));
  if (rank_ == root) count(Collective::broadcast, static_cast<int64_t>(x.nbytes()));
}

void MpiCommunicator::barrier() {
  const ops::OpProfileScope profile("comm_barrier");
  if (size_ == 1) return;
  MOE_MPI_CHECK(MPI_Barrier(comm_));
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  collective::check_split_color(color);
  MPI_Comm sub = MPI_COMM_NULL;
  MOE_MPI_CHECK(MPI_Comm_split(comm_, color, key, &sub));
  return std::make_unique<MpiCommunicator>(sub);
}

std::unique_ptr<Communicator> mpi_world_communicator() {
  int initialized = 0;
  MOE_MPI_CHECK(MPI_Initialized(&initialized));
  MOE_CHECK(initialized, "mpi_world_communicator: MPI is not initialized (call MPI_Init first)");
  MPI_Comm comm = MPI_COMM_NULL;
  MOE_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
  return std::make_unique<MpiCommunicator>(comm);
}

namespace {

// This rank's place among the group's ranks on its node, and their number; {0, 1} for a group that
// is not an MPI one.
std::pair<int, int> node_rank_and_size(Communicator& group) {
  auto* mpi = dynamic_cast<MpiCommunicator*>(&group.host());
  if (!mpi) return {0, 1};
  MPI_Comm node = MPI_COMM_NULL;
  MOE_MPI_CHECK(
      MPI_Comm_split_type(mpi->comm(), MPI_COMM_TYPE_SHARED, group.rank(), MPI_INFO_NULL, &node));
  int node_rank = 0, node_size = 1;
  MPI_Comm_rank(node, &node_rank);
  MPI_Comm_size(node, &node_size);
  MPI_Comm_free(&node);
  return {node_rank, node_size};
}

}  // namespace

int node_local_rank(Communicator& group) { return node_rank_and_size(group).first; }

int ranks_per_node(Communicator& group) {
  if (!dynamic_cast<MpiCommunicator*>(&group.host())) return 0;
  const auto [node_rank, node_size] = node_rank_and_size(group);
  // Uniform: the same size everywhere; consecutive: rank r is the (r mod size)-th of its node.
  Tensor sizes = Tensor::from_vector<int64_t>({2}, {node_size, -node_size});
  Tensor placed = Tensor::from_vector<int64_t>({1}, {group.rank() % node_size == node_rank});
  Stream stream;
  group.host().all_reduce(sizes, ReduceOp::max, stream);
  group.host().all_reduce(placed, ReduceOp::min, stream);
  const bool uniform = sizes.data<int64_t>()[0] == -sizes.data<int64_t>()[1];
  return uniform && placed.data<int64_t>()[0] == 1 ? node_size : 0;
}

void abort_job(int status) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, status);
  std::_Exit(status);
}

}  // namespace moe
