// NcclCommunicator against MpiCommunicator on the same data, under mpirun (ctest: 1 and 2 ranks).
// Skips without CUDA or when the node has fewer GPUs than ranks (NCCL allows one rank per GPU).
// Values are small integers in every dtype, so sums are exact in any order and results must match
// MPI's bit for bit. Every rank makes the same calls in the same order (EXPECT_, never ASSERT_,
// around collectives).
#include <cstring>
#include <numeric>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "parallel/mpi_communicator.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

class NcclVsMpi : public ::testing::Test {
 protected:
  void SetUp() override {
    const int ranks_here = std::max(ranks_per_node(*mpi), 1);
    if (!ops::built_with_cuda()) GTEST_SKIP() << "built without CUDA";
    if (ops::cuda_device_count() < ranks_here)
      GTEST_SKIP() << ops::cuda_device_count() << " GPUs for " << ranks_here
                   << " ranks on this node";
    ops::init_backends();
    device = Device::cuda(node_local_rank(*mpi) % ops::cuda_device_count());
    nccl = nccl_world_communicator(device);
    gpu = Stream{device, nullptr};
  }

  // rows x 3 values, a function of (rank, index), in dtype.
  Tensor host_input(int64_t rows, DType dtype, int salt = 0) {
    Tensor wide = Tensor::empty({rows, 3}, DType::f64);
    for (int64_t i = 0; i < wide.numel(); ++i)
      wide.data<double>()[i] = static_cast<double>((mpi->rank() * 7 + i * 3 + salt) % 23 - 11);
    Tensor t = Tensor::empty(wide.shape(), dtype);
    if (is_floating(dtype)) {
      ops::convert(wide, t, host);
    } else {
      for (int64_t i = 0; i < t.numel(); ++i) {
        if (dtype == DType::i32)
          t.data<int32_t>()[i] = static_cast<int32_t>(wide.data<double>()[i]);
        else
          t.data<int64_t>()[i] = static_cast<int64_t>(wide.data<double>()[i]);
      }
    }
    return t;
  }
  Tensor on_device(const Tensor& t) {
    Tensor d = Tensor::empty(t.shape(), t.dtype(), device);
    ops::copy(t, d, gpu);
    return d;
  }
  Tensor on_host(const Tensor& d) {
    Tensor t = Tensor::empty(d.shape(), d.dtype());
    ops::copy(d, t, gpu);  // the default stream: ordered after the collective, host waits
    return t;
  }
  static bool same_bytes(const Tensor& a, const Tensor& b) {
    return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
  }

  std::unique_ptr<Communicator> mpi = mpi_world_communicator();
  std::unique_ptr<Communicator> nccl;
  Device device = Device::cpu();
  Stream gpu, host;
};

TEST_F(NcclVsMpi, AllReduceEveryMpiDtypeAndOp) {
  for (DType dtype : {DType::f32, DType::f64, DType::i32, DType::i64})  // MPI cannot reduce bf16
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
      Tensor expected = host_input(41, dtype);
      Tensor x = on_device(expected);
      mpi->all_reduce(expected, op, host);
      nccl->all_reduce(x, op, gpu);
      EXPECT_TRUE(same_bytes(on_host(x), expected)) << dtype_name(dtype) << " op " << int(op);
    }
}

TEST_F(NcclVsMpi, Bf16SumsMatchTheF32Sum) {
  Tensor wide = host_input(19, DType::f32);
  mpi->all_reduce(wide, ReduceOp::sum, host);
  Tensor expected = Tensor::empty(wide.shape(), DType::bf16);
  ops::convert(wide, expected, host);  // small integers: exact in bf16
  Tensor x = on_device(host_input(19, DType::bf16));
  nccl->all_reduce(x, ReduceOp::sum, gpu);
  EXPECT_TRUE(same_bytes(on_host(x), expected));
}

TEST_F(NcclVsMpi, ReduceScatterAllGatherAndBroadcast) {
  const int size = mpi->size();
  Tensor in = host_input(5 * size, DType::f32);
  Tensor expected = Tensor::empty({5, 3}, DType::f32);
  mpi->reduce_scatter(in, expected, ReduceOp::sum, host);
  Tensor out = Tensor::empty({5, 3}, DType::f32, device);
  nccl->reduce_scatter(on_device(in), out, ReduceOp::sum, gpu);
  EXPECT_TRUE(same_bytes(on_host(out), expected));

  Tensor block = host_input(4, DType::i64);
  Tensor gathered = Tensor::empty({4 * size, 3}, DType::i64);
  mpi->all_gather(block, gathered, host);
  Tensor gathered_device = Tensor::empty({4 * size, 3}, DType::i64, device);
  nccl->all_gather(on_device(block), gathered_device, gpu);
  EXPECT_TRUE(same_bytes(on_host(gathered_device), gathered));

  Tensor root_values = host_input(6, DType::bf16, 5);
  Tensor x = on_device(root_values);
  mpi->broadcast(root_values, size - 1, host);
  nccl->broadcast(x, size - 1, gpu);
  EXPECT_TRUE(same_bytes(on_host(x), root_values));
}

TEST_F(NcclVsMpi, AllToAllVWithUnevenAndZeroCounts) {
  const int size = mpi->size(), rank = mpi->rank();
  std::vector<int64_t> send_rows(size);
  for (int p = 0; p < size; ++p) send_rows[p] = (rank + 2 * p) % 3;  // some zero
  const std::vector<int64_t> recv_rows = mpi->exchange_counts(send_rows);
  EXPECT_EQ(nccl->exchange_counts(send_rows), recv_rows);
  const int64_t sent = std::accumulate(send_rows.begin(), send_rows.end(), int64_t{0});
  const int64_t received = std::accumulate(recv_rows.begin(), recv_rows.end(), int64_t{0});
  Tensor in = host_input(sent, DType::bf16);
  Tensor expected = Tensor::empty({received, 3}, DType::bf16);
  mpi->all_to_all_v(in, send_rows, expected, recv_rows, host);
  Tensor out = Tensor::empty({received, 3}, DType::bf16, device);
  nccl->all_to_all_v(on_device(in), send_rows, out, recv_rows, gpu);
  EXPECT_TRUE(same_bytes(on_host(out), expected));
}

TEST_F(NcclVsMpi, SendRecvInARingIncludingSelf) {
  const int size = mpi->size(), rank = mpi->rank();
  const int next = (rank + 1) % size, previous = (rank + size - 1) % size;
  Tensor mine = host_input(3, DType::f32), own = host_input(2, DType::i32);
  Tensor from_previous = Tensor::empty({3, 3}, DType::f32, device);
  Tensor to_self = Tensor::empty({2, 3}, DType::i32, device);
  nccl->send_recv({{next, on_device(mine)}, {rank, on_device(own)}},
                  {{previous, from_previous}, {rank, to_self}}, gpu);
  Tensor expected = Tensor::empty({3, 3}, DType::f32);
  mpi->send_recv({{next, mine}}, {{previous, expected}}, host);
  EXPECT_TRUE(same_bytes(on_host(from_previous), expected));
  EXPECT_TRUE(same_bytes(on_host(to_self), own));
}

// Started transfers, before and after the transfer stream and communicator exist, on a stream of
// the test's own (as training's), with payloads large enough (24 MiB) for a missing order to show:
// - the source is doubled on the stream just before the start: the transfers must wait for it;
// - the test drops its handle on the source and fills a new tensor of the same size before the
//   wait: the pending transfers must hold the source, or the caching allocator hands its block to
//   the new tensor while the transfers still read it;
// - an all-reduce on the main communicator runs on the stream meanwhile (FSSDP's token all-to-all
//   behind the copies);
// and after the wait the values are MPI send_recv's.
TEST_F(NcclVsMpi, StartedSendRecvMatchesSendRecvAndLetsTheStreamWorkMeanwhile) {
  const int size = mpi->size(), rank = mpi->rank();
  const int next = (rank + 1) % size, previous = (rank + size - 1) % size;
  const int64_t rows = int64_t{2} << 20;  // x 3 f32 values: 24 MiB
  Tensor mine = host_input(rows, DType::f32);
  ops::scale(mine, 2.0f, host);
  Tensor expected = Tensor::empty(mine.shape(), DType::f32);
  mpi->send_recv({{next, mine}}, {{previous, expected}}, host);
  Tensor summed = host_input(5, DType::f32, 1), expected_sum = summed.clone();
  mpi->all_reduce(expected_sum, ReduceOp::sum, host);
  ops::OwnedStream owned(device);
  Stream& stream = owned.get();
  for (const bool overlapped : {false, true}) {
    SCOPED_TRACE(overlapped ? "overlapped" : "before enable_overlapped_transfers");
    if (overlapped) nccl->enable_overlapped_transfers();
    Tensor source = Tensor::empty(mine.shape(), DType::f32, device);
    ops::copy(host_input(rows, DType::f32), source, stream);
    ops::scale(source, 2.0f, stream);
    Tensor received = Tensor::empty(mine.shape(), DType::f32, device);
    Tensor to_self = Tensor::empty(mine.shape(), DType::f32, device);
    std::unique_ptr<PendingTransfers> pending = nccl->start_send_recv(
        {{next, source}, {rank, source}}, {{previous, received}, {rank, to_self}}, stream);
    source = Tensor();
    Tensor reuse = Tensor::empty(mine.shape(), DType::f32, device);
    ops::fill(reuse, -1.0, stream);
    Tensor meanwhile = Tensor::empty(summed.shape(), DType::f32, device);
    ops::copy(summed, meanwhile, stream);
    nccl->all_reduce(meanwhile, ReduceOp::sum, stream);
    pending->wait();
    Tensor got = Tensor::empty(mine.shape(), DType::f32), got_self = got.clone(),
           got_sum = Tensor::empty(summed.shape(), DType::f32);
    ops::copy(received, got, stream);
    ops::copy(to_self, got_self, stream);
    ops::copy(meanwhile, got_sum, stream);
    EXPECT_TRUE(same_bytes(got, expected));
    EXPECT_TRUE(same_bytes(got_self, mine));
    EXPECT_TRUE(same_bytes(got_sum, expected_sum));
  }
}

TEST_F(NcclVsMpi, SplitIntoEvenAndOddRanks) {
  auto mpi_half = mpi->split(mpi->rank() % 2, mpi->rank());
  auto nccl_half = nccl->split(mpi->rank() % 2, mpi->rank());
  EXPECT_EQ(nccl_half->size(), mpi_half->size());
  EXPECT_EQ(nccl_half->rank(), mpi_half->rank());
  Tensor expected = host_input(8, DType::f32);
  Tensor x = on_device(expected);
  mpi_half->all_reduce(expected, ReduceOp::sum, host);
  nccl_half->all_reduce(x, ReduceOp::sum, gpu);
  EXPECT_TRUE(same_bytes(on_host(x), expected));
}

TEST_F(NcclVsMpi, VolumeCountsWhatMpiCounts) {
  Tensor x = on_device(host_input(10, DType::f32));
  Tensor y = host_input(10, DType::f32);
  nccl->reset_volume();
  mpi->reset_volume();
  nccl->all_reduce(x, ReduceOp::sum, gpu);
  mpi->all_reduce(y, ReduceOp::sum, host);
  EXPECT_EQ(nccl->volume().total(), mpi->volume().total());
}

TEST_F(NcclVsMpi, HostTensorsAndBadShapesAreInputErrorsBeforeAnyCommunication) {
  Tensor on_cpu = host_input(4, DType::f32);
  EXPECT_TRUE(testing::mentions(
      testing::input_error_message([&] { nccl->all_reduce(on_cpu, ReduceOp::sum, gpu); }),
      "works on tensors on " + device.str()));
  Tensor in = on_device(host_input(3, DType::f32));
  Tensor wrong = Tensor::empty({2 * mpi->size() + 1, 3}, DType::f32, device);
  EXPECT_TRUE(testing::mentions(
      testing::input_error_message([&] { nccl->all_gather(in, wrong, gpu); }), "all_gather"));
}

}  // namespace
}  // namespace moe
