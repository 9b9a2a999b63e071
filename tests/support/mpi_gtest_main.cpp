// gtest main for tests that run under mpirun.
//
// - Initializes MPI and fails (never skips) when the world size differs from --expected-ranks=N,
//   which the CMake helper moe_add_mpi_test passes; a test meant for 4 ranks that silently ran on 1
//   would prove nothing.
// - Rank 0 prints the usual gtest output; other ranks print only their failures, prefixed
//   "[rank r]", so a failure on any rank is seen.
// - The exit code is reduced over ranks: every rank exits 1 if any rank failed.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

#include "core/log.h"

namespace {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed())
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  int thread_level = 0;  // checkpoint.async writes from a background thread
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &thread_level);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  moe::set_log_rank(rank, size);

  int expected = -1;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--expected-ranks=", 17) == 0) expected = std::atoi(argv[i] + 17);
  if (expected != size) {
    if (rank == 0)
      std::fprintf(stderr,
                   "FAILED: this test expects %d MPI ranks (--expected-ranks) but runs on %d\n",
                   expected, size);
    MPI_Finalize();
    return 1;
  }

  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any_failed && !failed)
    std::fprintf(stderr, "FAILED on another rank (see its [rank r] lines above)\n");
  MPI_Finalize();
  return any_failed;
}
