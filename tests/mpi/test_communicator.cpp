// MpiCommunicator under mpirun (ctest runs it on 1, 2 and 4 ranks).
//
// Every input is a function of (rank, index), so each rank computes the expected result of a
// collective locally and checks every element, with no extra communication and no tolerance (values
// are exact in their dtype). Every rank makes the same collective calls in the same order whatever
// fails, so expectations are EXPECT_ and never ASSERT_ around collectives. Argument errors are
// thrown before any MPI call, on every rank alike, so the error tests cannot leave a rank waiting.
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/allocator.h"
#include "parallel/communicator.h"
#include "parallel/mpi_check.h"
#include "parallel/mpi_communicator.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;

class CommunicatorTest : public ::testing::Test {
 protected:
  std::unique_ptr<Communicator> comm = mpi_world_communicator();
  const int rank = comm->rank();
  const int size = comm->size();
  Stream stream;
};

template <typename T, typename Value>
Tensor make_tensor(Shape shape, Value value) {
  std::vector<T> values(static_cast<size_t>(shape.numel()));
  for (int64_t i = 0; i < shape.numel(); ++i) values[i] = value(i);
  return Tensor::from_vector<T>(shape, values);
}

template <typename T>
T reduce(ReduceOp op, T a, T b) {
  if (op == ReduceOp::sum) return a + b;
  return op == ReduceOp::max ? std::max(a, b) : std::min(a, b);
}

const char* op_name(ReduceOp op) {
  return op == ReduceOp::sum ? "sum" : op == ReduceOp::max ? "max" : "min";
}

// value(r, i) is element i on rank r.
template <typename T, typename Value>
void check_all_reduce(Communicator& comm, ReduceOp op, Value value) {
  const int64_t n = 37;
  Tensor x = make_tensor<T>({n}, [&](int64_t i) { return value(comm.rank(), i); });
  std::vector<T> expected(n);
  for (int64_t i = 0; i < n; ++i) {
    expected[i] = value(0, i);
    for (int r = 1; r < comm.size(); ++r) expected[i] = reduce(op, expected[i], value(r, i));
  }
  Stream stream;
  comm.all_reduce(x, op, stream);
  EXPECT_EQ(x.to_vector<T>(), expected) << dtype_name(x.dtype()) << " " << op_name(op);
}

// Lets a test make tensors tagged cuda:0 without a GPU: while alive, it is the registered CUDA
// allocator and hands out host memory. Tensors made under it must be destroyed before it is.
class FakeDeviceAllocator final : public Allocator {
 public:
  FakeDeviceAllocator() {
    try {
      previous_ = &allocator_for(Device::cuda());
    } catch (const InputError&) {
      previous_ = nullptr;  // none registered (a build without CUDA)
    }
    register_allocator(DeviceType::cuda, this);
  }
  ~FakeDeviceAllocator() override { register_allocator(DeviceType::cuda, previous_); }
  void* allocate(size_t bytes, Device) override {
    return host_allocator().allocate(bytes, Device::cpu());
  }
  void deallocate(void* ptr, size_t bytes, Device) override {
    host_allocator().deallocate(ptr, bytes, Device::cpu());
  }

 private:
  Allocator* previous_ = nullptr;
};

TEST_F(CommunicatorTest, RankAndSizeMatchTheWorld) {
  int world_rank = -1, world_size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  EXPECT_EQ(rank, world_rank);
  EXPECT_EQ(size, world_size);
}

TEST_F(CommunicatorTest, AllReduceFloat) {
  check_all_reduce<float>(*comm, ReduceOp::sum,
                          [](int r, int64_t i) { return 0.5f * (r + 1) + static_cast<float>(i); });
  check_all_reduce<float>(*comm, ReduceOp::max, [](int r, int64_t i) {
    return static_cast<float>((r * 7 + i * 3) % 11) - 5.0f;
  });
  check_all_reduce<double>(*comm, ReduceOp::min, [](int r, int64_t i) {
    return -0.25 * static_cast<double>((r + 2 * i) % 5);
  });
}

TEST_F(CommunicatorTest, AllReduceInteger) {
  // Beyond 2^53, so a reduction through double would lose the low bits.
  check_all_reduce<int64_t>(*comm, ReduceOp::sum,
                            [](int r, int64_t i) { return (int64_t{1} << 55) * (r + 1) + i - r; });
  check_all_reduce<int64_t>(*comm, ReduceOp::min,
                            [](int r, int64_t i) { return (int64_t{1} << 60) - (r * 3 + i) % 7; });
  check_all_reduce<int32_t>(*comm, ReduceOp::max,
                            [](int r, int64_t i) { return static_cast<int32_t>((r * 5 + i) % 9); });
}

TEST_F(CommunicatorTest, ReduceScatter) {
  const int64_t block_rows = 3, width = 2;
  // in[row, col] on rank r = r + 10*row + 100*col; rank `rank` receives block `rank`.
  auto value = [&](int r, int64_t i) {
    return static_cast<float>(r + 10 * (i / width) + 100 * (i % width));
  };
  const Tensor in =
      make_tensor<float>({size * block_rows, width}, [&](int64_t i) { return value(rank, i); });
  Tensor out = Tensor::empty({block_rows, width}, DType::f32);
  comm->reduce_scatter(in, out, ReduceOp::sum, stream);
  std::vector<float> expected(block_rows * width, 0.0f);
  for (int64_t i = 0; i < block_rows * width; ++i)
    for (int r = 0; r < size; ++r) expected[i] += value(r, rank * block_rows * width + i);
  EXPECT_EQ(out.to_vector<float>(), expected);

  // in64[i] on rank r = (r << 40) + i: the max comes from the last rank, at this rank's block.
  const Tensor in64 = make_tensor<int64_t>({size * block_rows},
                                           [&](int64_t i) { return (int64_t{rank} << 40) + i; });
  Tensor out64 = Tensor::empty({block_rows}, DType::i64);
  comm->reduce_scatter(in64, out64, ReduceOp::max, stream);
  std::vector<int64_t> expected64(block_rows);
  for (int64_t j = 0; j < block_rows; ++j)
    expected64[j] = (int64_t{size - 1} << 40) + rank * block_rows + j;
  EXPECT_EQ(out64.to_vector<int64_t>(), expected64);
}

TEST_F(CommunicatorTest, AllGather) {
  const int64_t rows = 2, width = 3, block = rows * width;
  const Tensor in = make_tensor<int32_t>(
      {rows, width}, [&](int64_t i) { return rank * 1000 + static_cast<int32_t>(i); });
  Tensor out = Tensor::empty({size * rows, width}, DType::i32);
  comm->all_gather(in, out, stream);
  std::vector<int32_t> expected;
  for (int r = 0; r < size; ++r)
    for (int64_t i = 0; i < block; ++i) expected.push_back(r * 1000 + static_cast<int32_t>(i));
  EXPECT_EQ(out.to_vector<int32_t>(), expected);
}

TEST_F(CommunicatorTest, AllGatherMovesAnyDtypeAsBytes) {
  const int64_t rows = 3;
  Tensor in = Tensor::empty({rows, 2}, DType::bf16);
  for (int64_t i = 0; i < in.numel(); ++i)
    in.data<bf16_t>()[i].bits = static_cast<uint16_t>(0x3f00 + rank * 16 + i);
  Tensor out = Tensor::empty({size * rows, 2}, DType::bf16);
  comm->all_gather(in, out, stream);
  for (int r = 0; r < size; ++r)
    for (int64_t i = 0; i < in.numel(); ++i)
      EXPECT_EQ(out.data<bf16_t>()[r * in.numel() + i].bits, 0x3f00 + r * 16 + i)
          << "block " << r << " element " << i;
}

TEST_F(CommunicatorTest, AllGatherInPlace) {
  const int64_t rows = 2;
  Tensor out = make_tensor<double>({size * rows, 4}, [&](int64_t i) {
    return i / (rows * 4) == rank ? rank + 0.125 * static_cast<double>(i) : -1.0;
  });
  const Tensor in = out.narrow(rank * rows, rows);
  comm->all_gather(in, out, stream);
  EXPECT_EQ(out.to_vector<double>(), make_tensor<double>(out.shape(), [&](int64_t i) {
                                       return i / (rows * 4) + 0.125 * static_cast<double>(i);
                                     }).to_vector<double>());
}

// Rank r sends (r + p) % 3 rows to peer p: uneven counts, and zero counts for r + p = 0 mod 3 (on
// one rank, the only count is zero). Element (j, c) of the rows r sends to p encodes all four.
float encode(int sender, int receiver, int64_t row, int64_t col) {
  return static_cast<float>(sender * 10000 + receiver * 100 + row * 4 + col);
}
int64_t rows_sent(int sender, int receiver) { return (sender + receiver) % 3; }

TEST_F(CommunicatorTest, AllToAllVWithUnevenAndZeroCounts) {
  const int64_t width = 3;
  std::vector<int64_t> send_rows(size), recv_rows(size);
  for (int p = 0; p < size; ++p) {
    send_rows[p] = rows_sent(rank, p);
    recv_rows[p] = rows_sent(p, rank);
  }
  std::vector<float> send_values, expected;
  for (int p = 0; p < size; ++p)
    for (int64_t j = 0; j < send_rows[p]; ++j)
      for (int64_t c = 0; c < width; ++c) send_values.push_back(encode(rank, p, j, c));
  for (int p = 0; p < size; ++p)
    for (int64_t j = 0; j < recv_rows[p]; ++j)
      for (int64_t c = 0; c < width; ++c) expected.push_back(encode(p, rank, j, c));
  const int64_t send_total = static_cast<int64_t>(send_values.size()) / width;
  const int64_t recv_total = static_cast<int64_t>(expected.size()) / width;
  const Tensor in = Tensor::from_vector<float>({send_total, width}, send_values);
  Tensor out = Tensor::empty({recv_total, width}, DType::f32);
  comm->all_to_all_v(in, send_rows, out, recv_rows, stream);
  EXPECT_EQ(out.to_vector<float>(), expected);

  // The reverse exchange (counts swapped) is the adjoint that MoE backward uses: it restores `in`.
  Tensor back = Tensor::empty(in.shape(), DType::f32);
  comm->all_to_all_v(out, recv_rows, back, send_rows, stream);
  EXPECT_EQ(back.to_vector<float>(), send_values);
}

TEST_F(CommunicatorTest, AllToAllVMovesWholeMultiDimRows) {
  // Every rank sends rank + 1 rows of shape [2, 2] (i64) to every peer.
  std::vector<int64_t> send_rows(size, rank + 1), recv_rows(size);
  for (int p = 0; p < size; ++p) recv_rows[p] = p + 1;
  const int64_t row = 4;
  const Tensor in = make_tensor<int64_t>({size * (rank + 1), 2, 2}, [&](int64_t i) {
    const int64_t peer = i / (row * (rank + 1));
    return (int64_t{rank} << 40) + (peer << 20) + i % (row * (rank + 1));
  });
  int64_t recv_total = 0;
  for (int64_t r : recv_rows) recv_total += r;
  Tensor out = Tensor::empty({recv_total, 2, 2}, DType::i64);
  comm->all_to_all_v(in, send_rows, out, recv_rows, stream);
  std::vector<int64_t> expected;
  for (int p = 0; p < size; ++p)
    for (int64_t k = 0; k < row * (p + 1); ++k)
      expected.push_back((int64_t{p} << 40) + (int64_t{rank} << 20) + k);
  EXPECT_EQ(out.to_vector<int64_t>(), expected);
}

TEST_F(CommunicatorTest, ExchangeCounts) {
  std::vector<int64_t> send(size), expected(size);
  for (int p = 0; p < size; ++p) {
    send[p] = 100 * rank + p + (int64_t{1} << 40);
    expected[p] = 100 * p + rank + (int64_t{1} << 40);
  }
  EXPECT_EQ(comm->exchange_counts(send), expected);
}

TEST_F(CommunicatorTest, BroadcastFromTheLastRank) {
  const int root = size - 1;  // not rank 0 whenever there is more than one rank
  Tensor x = make_tensor<int64_t>({3, 4}, [&](int64_t i) { return rank * 1000 + i; });
  comm->broadcast(x, root, stream);
  EXPECT_EQ(x.to_vector<int64_t>(), make_tensor<int64_t>({3, 4}, [&](int64_t i) {
                                      return root * 1000 + i;
                                    }).to_vector<int64_t>());

  Tensor scalar = Tensor::from_vector<float>({}, {static_cast<float>(rank) + 0.5f});
  comm->broadcast(scalar, root, stream);
  EXPECT_EQ(scalar.data<float>()[0], static_cast<float>(root) + 0.5f);
}

// A ring in both directions plus a transfer to itself, posted in an order that would deadlock
// with blocking calls (everyone receives first); two messages to one peer arrive in order.
TEST_F(CommunicatorTest, GroupedSendRecvRingAndSelf) {
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  auto message = [](int from, int to, int which) {
    return make_tensor<int64_t>(
        {2, 3}, [=](int64_t i) { return from * 10000 + to * 100 + which * 10 + i; });
  };
  Tensor from_prev_a = Tensor::zeros({2, 3}, DType::i64),
         from_prev_b = Tensor::zeros({2, 3}, DType::i64),
         from_next = Tensor::zeros({2, 3}, DType::i64),
         from_self = Tensor::zeros({2, 3}, DType::i64);
  comm->reset_volume();
  comm->send_recv({{next, message(rank, next, 0)},
                   {next, message(rank, next, 1)},
                   {prev, message(rank, prev, 2)},
                   {rank, message(rank, rank, 3)}},
                  {{prev, from_prev_a}, {prev, from_prev_b}, {next, from_next}, {rank, from_self}},
                  stream);
  EXPECT_EQ(from_prev_a.to_vector<int64_t>(), message(prev, rank, 0).to_vector<int64_t>());
  EXPECT_EQ(from_prev_b.to_vector<int64_t>(), message(prev, rank, 1).to_vector<int64_t>());
  EXPECT_EQ(from_next.to_vector<int64_t>(), message(next, rank, 2).to_vector<int64_t>());
  EXPECT_EQ(from_self.to_vector<int64_t>(), message(rank, rank, 3).to_vector<int64_t>());
  // Counted: the three 48-byte messages to other ranks (none with one rank, where all are to self).
  EXPECT_EQ(comm->volume()[Collective::send_recv], size == 1 ? 0 : 3 * 48);
}

// Started transfers move while the ranks do other collectives, and are there after wait(): a
// ring, with an all-reduce between posting and waiting. Counted when started.
TEST_F(CommunicatorTest, StartedSendRecvArrivesWhenWaitedFor) {
  const int next = (rank + 1) % size, prev = (rank + size - 1) % size;
  const Tensor sent = make_tensor<float>({64, 16}, [&](int64_t i) { return rank * 1e4f + i; });
  Tensor received = Tensor::zeros({64, 16}, DType::f32);
  comm->reset_volume();
  std::unique_ptr<PendingTransfers> pending =
      comm->start_send_recv({{next, sent}}, {{prev, received}}, stream);
  EXPECT_EQ(comm->volume()[Collective::send_recv], size == 1 ? 0 : 64 * 16 * 4);
  Tensor sum = Tensor::from_vector<int64_t>({1}, {1});
  comm->all_reduce(sum, ReduceOp::sum, stream);
  EXPECT_EQ(sum.data<int64_t>()[0], size);
  pending->wait();
  EXPECT_EQ(received.to_vector<float>(), make_tensor<float>({64, 16}, [&](int64_t i) {
                                           return prev * 1e4f + i;
                                         }).to_vector<float>());
}

TEST_F(CommunicatorTest, SendRecvRejectsABadPeerBeforeSending) {
  const Tensor t = Tensor::zeros({2}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         comm->send_recv({{size, t}}, {}, stream);
                       }),
                       "peer " + std::to_string(size) + " is not a rank"));
  EXPECT_TRUE(mentions(input_error_message([&] {
                         comm->send_recv({}, {{-1, t}}, stream);
                       }),
                       "peer -1 is not a rank"));
  comm->barrier();
}

TEST_F(CommunicatorTest, SplitIntoEvenAndOddRanks) {
  const int parity = rank % 2;
  int expected_size = 0, expected_sum = 0;
  for (int q = parity; q < size; q += 2) {
    ++expected_size;
    expected_sum += q + 1;
  }
  std::unique_ptr<Communicator> sub = comm->split(parity, rank);
  EXPECT_EQ(sub->size(), expected_size);
  EXPECT_EQ(sub->rank(), rank / 2);
  Tensor x = Tensor::from_vector<int32_t>({1}, {rank + 1});
  sub->all_reduce(x, ReduceOp::sum, stream);
  EXPECT_EQ(x.data<int32_t>()[0], expected_sum);

  // Ranks are ordered by key: with key = -rank the order reverses, which all_gather shows.
  std::unique_ptr<Communicator> reversed = comm->split(parity, -rank);
  EXPECT_EQ(reversed->rank(), expected_size - 1 - rank / 2);
  const Tensor mine = Tensor::from_vector<int32_t>({1}, {rank});
  Tensor all = Tensor::empty({expected_size}, DType::i32);
  reversed->all_gather(mine, all, stream);
  std::vector<int32_t> expected_order;
  for (int q = size - 1; q >= 0; --q)
    if (q % 2 == parity) expected_order.push_back(q);
  EXPECT_EQ(all.to_vector<int32_t>(), expected_order);
}

TEST_F(CommunicatorTest, CommunicatorOfOneRankCopiesInToOut) {
  std::unique_ptr<Communicator> alone = comm->split(rank, 0);
  EXPECT_EQ(alone->size(), 1);
  EXPECT_EQ(alone->rank(), 0);
  const Tensor in =
      make_tensor<float>({3, 2}, [&](int64_t i) { return rank + 0.5f * static_cast<float>(i); });

  Tensor x = in.clone();
  alone->all_reduce(x, ReduceOp::sum, stream);
  EXPECT_EQ(x.to_vector<float>(), in.to_vector<float>());
  Tensor out = Tensor::zeros({3, 2}, DType::f32);
  alone->reduce_scatter(in, out, ReduceOp::max, stream);
  EXPECT_EQ(out.to_vector<float>(), in.to_vector<float>());
  out = Tensor::zeros({3, 2}, DType::f32);
  alone->all_gather(in, out, stream);
  EXPECT_EQ(out.to_vector<float>(), in.to_vector<float>());
  out = Tensor::zeros({3, 2}, DType::f32);
  alone->all_to_all_v(in, {3}, out, {3}, stream);
  EXPECT_EQ(out.to_vector<float>(), in.to_vector<float>());
  EXPECT_EQ(alone->exchange_counts({7}), std::vector<int64_t>{7});
  alone->broadcast(x, 0, stream);
  EXPECT_EQ(x.to_vector<float>(), in.to_vector<float>());
  alone->barrier();
}

// Each rank counts the payload it hands over: the tensor for reductions and gathers, the rows for
// other ranks in all-to-all, the tensor on the broadcast root only; one rank sends nothing.
TEST_F(CommunicatorTest, CountsTheBytesEachRankSends) {
  comm->reset_volume();
  Tensor x = Tensor::zeros({10}, DType::f32);
  comm->all_reduce(x, ReduceOp::sum, stream);
  comm->all_reduce(x, ReduceOp::max, stream);
  Tensor rows = Tensor::zeros({size, 3}, DType::f64),
         gathered = Tensor::zeros({size * size, 3}, DType::f64);
  comm->all_gather(rows, gathered, stream);
  const std::vector<int64_t> one_row_each(static_cast<size_t>(size), 1);
  Tensor received = Tensor::zeros({size, 3}, DType::f64);
  comm->all_to_all_v(rows, one_row_each, received, one_row_each, stream);
  comm->broadcast(x, 0, stream);
  const CommVolume& v = comm->volume();
  if (size == 1) {
    EXPECT_EQ(v.total(), 0);
    return;
  }
  EXPECT_EQ(v[Collective::all_reduce], 2 * 40);
  EXPECT_EQ(v[Collective::all_gather], size * 24);
  EXPECT_EQ(v[Collective::all_to_all], (size - 1) * 24);
  EXPECT_EQ(v[Collective::broadcast], rank == 0 ? 40 : 0);
  EXPECT_EQ(v[Collective::reduce_scatter], 0);
  EXPECT_EQ(v.total(), 80 + size * 24 + (size - 1) * 24 + (rank == 0 ? 40 : 0));
  comm->reset_volume();
  EXPECT_EQ(comm->volume().total(), 0);
}

TEST_F(CommunicatorTest, AllToAllVRejectsBadCounts) {
  const Tensor in = Tensor::zeros({4, 2}, DType::f32);
  Tensor out = Tensor::zeros({4, 2}, DType::f32);
  std::vector<int64_t> even(size, 0);
  even[rank] = 4;  // send all four rows to myself: a valid call

  std::vector<int64_t> too_many = even;
  too_many[rank] = 5;
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->all_to_all_v(in, too_many, out, even, stream); }),
               "'send_rows' sums to 5 rows but 'in' f32[4, 2] on cpu has 4"));
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->all_to_all_v(in, even, out, too_many, stream); }),
               "'recv_rows' sums to 5 rows but 'out' f32[4, 2] on cpu has 4"));
  std::vector<int64_t> extra_entry = even;
  extra_entry.push_back(0);
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->all_to_all_v(in, extra_entry, out, even, stream); }),
               "'send_rows' has " + std::to_string(size + 1) + " entries for " +
                   std::to_string(size) + " ranks"));
  Tensor wide = Tensor::zeros({4, 3}, DType::f32);
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->all_to_all_v(in, even, wide, even, stream); }),
               "differ in size"));
  if (size > 1) {
    std::vector<int64_t> negative = even;
    negative[rank] = 5;
    negative[(rank + 1) % size] = -1;
    EXPECT_TRUE(
        mentions(input_error_message([&] { comm->all_to_all_v(in, negative, out, even, stream); }),
                 "is negative"));
  }
  // Nobody was left inside a collective: the communicator still works.
  comm->all_to_all_v(in, even, out, even, stream);
  comm->barrier();
}

TEST_F(CommunicatorTest, RejectsDeviceTensors) {
  FakeDeviceAllocator fake_device;
  Tensor device = Tensor::empty({4, 2}, DType::f32, Device::cuda(0));
  Tensor host = Tensor::zeros({4, 2}, DType::f32);
  const std::string host_only = "works on host tensors only";
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->all_reduce(device, ReduceOp::sum, stream); }),
               "'x' is f32[4, 2] on cuda:0"));
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->broadcast(device, 0, stream); }), host_only));
  std::vector<int64_t> rows(size, 0);
  rows[rank] = 4;
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->all_to_all_v(device, rows, host, rows, stream); }),
               host_only));
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->all_to_all_v(host, rows, device, rows, stream); }),
               host_only));
  Tensor gathered = Tensor::empty({4 * size, 2}, DType::f32, Device::cuda(0));
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->all_gather(host, gathered, stream); }), host_only));
}

TEST_F(CommunicatorTest, RejectsOtherBadArguments) {
  Tensor half = Tensor::empty({4}, DType::bf16);
  EXPECT_TRUE(mentions(input_error_message([&] { comm->all_reduce(half, ReduceOp::sum, stream); }),
                       "dtype bf16 cannot be reduced over MPI"));
  const Tensor in = Tensor::zeros({size * 2 + 1, 3}, DType::f32);
  Tensor out = Tensor::zeros({2, 3}, DType::f32);
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->reduce_scatter(in, out, ReduceOp::sum, stream); }),
               "'in' has shape [" + std::to_string(size * 2 + 1) + ", 3]"));
  Tensor x = Tensor::zeros({2}, DType::f32);
  EXPECT_TRUE(mentions(input_error_message([&] { comm->broadcast(x, size, stream); }),
                       "root " + std::to_string(size) + " is not a rank"));
  EXPECT_TRUE(
      mentions(input_error_message([&] { comm->exchange_counts(std::vector<int64_t>(size + 2)); }),
               std::to_string(size + 2) + " counts for " + std::to_string(size) + " ranks"));
  EXPECT_TRUE(mentions(input_error_message([&] { comm->split(-1, rank); }), "color must be >= 0"));
  comm->barrier();
}

TEST_F(CommunicatorTest, FailedMpiCallThrowsCommErrorWithMpiText) {
  const MPI_Comm mpi_comm = dynamic_cast<MpiCommunicator&>(*comm).comm();
  int value = 0;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(MPI_ERR_ROOT, text, &length);
  // An invalid root fails MPI's argument check on every rank, before any communication.
  try {
    MOE_MPI_CHECK(MPI_Bcast(&value, 1, MPI_INT, size + 3, mpi_comm));
    ADD_FAILURE() << "MPI_Bcast with an invalid root did not fail";
  } catch (const CommError& e) {
    EXPECT_TRUE(mentions(e.what(), "MPI_Bcast(&value, 1, MPI_INT, size + 3, mpi_comm) failed: " +
                                       std::string(text, static_cast<size_t>(length))));
  }
  comm->barrier();
}

// Every rank of these tests runs on this one machine: one node holding the whole group, for the
// world and for a group split out of it.
TEST_F(CommunicatorTest, RanksPerNodeOfOneMachineIsTheGroupSize) {
  EXPECT_EQ(ranks_per_node(*comm), size);
  std::unique_ptr<Communicator> half = comm->split(rank % 2, rank);
  EXPECT_EQ(ranks_per_node(*half), half->size());
}

}  // namespace
}  // namespace moe
