#include "trainer/stop_signal.h"

#include <csignal>

#include "parallel/parallel_groups.h"

namespace moe {

namespace {

volatile std::sig_atomic_t received = 0;

void on_signal(int signal) { received = signal; }

}  // namespace

void install_stop_handlers() {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGUSR1, on_signal);
}

int stop_requested(Communicator* world) {
  Tensor flag = Tensor::from_vector<int64_t>({1}, {static_cast<int64_t>(received)});
  if (group_size(world) > 1) {
    Stream stream;
    world->host().all_reduce(flag, ReduceOp::max, stream);
  }
  return static_cast<int>(flag.data<int64_t>()[0]);
}

}  // namespace moe
