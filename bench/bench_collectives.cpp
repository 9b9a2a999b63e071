// Collective throughput over MPI (the Communicator every parallel algorithm uses), message sizes
// 4 KiB to 64 MiB, in the nccl-tests style: time per call, algorithm bandwidth (bytes / time) and
// bus bandwidth (algorithm bandwidth times the factor that makes it comparable across rank counts:
// 2(n-1)/n for all-reduce, (n-1)/n for all-gather, reduce-scatter and all-to-all, 1 for the
// grouped send/recv ring).
//   mpirun -np 2 build/bench/bench_collectives [--min-bytes 4096] [--max-bytes 67108864] [--iters
//   20]
// "bytes" is the size of each rank's whole buffer (all-reduce: the tensor; all-gather and
// all-to-all: the gathered/exchanged buffer; reduce-scatter: the input).
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace {

using namespace moe;

struct Case {
  const char* name;
  double bus_factor;  // of n ranks, see the header
  std::function<void(Communicator&, int64_t floats, Stream&)> run;
};

double time_per_call(Communicator& comm, const Case& c, int64_t floats, int iters, Stream& stream) {
  c.run(comm, floats, stream);  // warm up
  comm.barrier();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) c.run(comm, floats, stream);
  comm.barrier();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"MPI collective throughput."};
  int64_t min_bytes = 4096, max_bytes = int64_t{64} << 20;
  int iters = 20;
  app.add_option("--min-bytes", min_bytes, "smallest buffer")->check(CLI::PositiveNumber);
  app.add_option("--max-bytes", max_bytes, "largest buffer")->check(CLI::PositiveNumber);
  app.add_option("--iters", iters, "timed calls per size")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  MPI_Init(&argc, &argv);
  {
    std::unique_ptr<Communicator> comm = mpi_world_communicator();
    const int n = comm->size();
    const std::vector<Case> cases = {
        {"all_reduce", 2.0 * (n - 1) / n,
         [](Communicator& c, int64_t floats, Stream& s) {
           static Tensor x;
           if (x.numel() != floats) x = Tensor::zeros({floats}, DType::f32);
           c.all_reduce(x, ReduceOp::sum, s);
         }},
        {"all_gather", 1.0 * (n - 1) / n,
         [n](Communicator& c, int64_t floats, Stream& s) {
           static Tensor in, out;
           if (out.numel() != floats / n * n) {
             in = Tensor::zeros({floats / n}, DType::f32);
             out = Tensor::zeros({floats / n * n}, DType::f32);
           }
           c.all_gather(in, out, s);
         }},
        {"reduce_scatter", 1.0 * (n - 1) / n,
         [n](Communicator& c, int64_t floats, Stream& s) {
           static Tensor in, out;
           if (in.numel() != floats / n * n) {
             in = Tensor::zeros({floats / n * n}, DType::f32);
             out = Tensor::zeros({floats / n}, DType::f32);
           }
           c.reduce_scatter(in, out, ReduceOp::sum, s);
         }},
        {"all_to_all_v", 1.0 * (n - 1) / n,
         [n](Communicator& c, int64_t floats, Stream& s) {
           static Tensor in, out;
           const int64_t rows = floats / n * n;
           if (in.numel() != rows) {
             in = Tensor::zeros({rows}, DType::f32);
             out = Tensor::zeros({rows}, DType::f32);
           }
           const std::vector<int64_t> counts(static_cast<size_t>(n), rows / n);
           c.all_to_all_v(in, counts, out, counts, s);
         }},
        {"send_recv", 1.0,  // a ring: each rank sends its buffer to the next and receives one
         [](Communicator& c, int64_t floats, Stream& s) {
           static Tensor in, out;
           if (in.numel() != floats) {
             in = Tensor::zeros({floats}, DType::f32);
             out = Tensor::zeros({floats}, DType::f32);
           }
           const int next = (c.rank() + 1) % c.size(), prev = (c.rank() + c.size() - 1) % c.size();
           c.send_recv({{next, in}}, {{prev, out}}, s);
         }},
    };
    Stream stream;
    if (comm->rank() == 0)
      std::printf(
          "# %d ranks; time per call, algorithm and bus bandwidth\n%-15s %12s %12s %10s %10s\n", n,
          "collective", "bytes", "time (us)", "algbw GB/s", "busbw GB/s");
    for (const Case& c : cases)
      for (int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
        const int64_t floats = bytes / 4;
        const double seconds = time_per_call(*comm, c, floats, iters, stream);
        const double algbw = static_cast<double>(bytes) / seconds / 1e9;
        if (comm->rank() == 0)
          std::printf("%-15s %12lld %12.1f %10.3f %10.3f\n", c.name, static_cast<long long>(bytes),
                      seconds * 1e6, algbw, algbw * c.bus_factor);
      }
  }
  MPI_Finalize();
  return 0;
}
