// Per-op wall-clock totals, for "where does the time go" breakdowns (bench/, moe-train --profile).
//
// Every op passes through dispatch.cpp, which opens an OpProfileScope named after the op; when
// profiling is off that costs one branch. The MPI communicator times its collectives the same way
// (comm_<collective>). Times are host wall time around the backend call: exact
// for the CPU backend, which runs synchronously. Nested ops (clip_grad_norm calls scale) count in
// both. Not thread-safe: ops are issued from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace moe::ops {

struct OpTime {
  std::string op;
  int64_t calls = 0;
  double seconds = 0;
};

void set_op_profiling(bool enabled);
bool op_profiling();
void reset_op_profile();
// Totals since the last reset, slowest first.
std::vector<OpTime> op_profile();
// A table of op_profile(): op, calls, seconds, share of the total.
std::string format_op_profile(const std::vector<OpTime>& times);

class OpProfileScope {
 public:
  explicit OpProfileScope(const char* op) : op_(op_profiling() ? op : nullptr) {
    if (op_) start_ = std::chrono::steady_clock::now();
  }
  ~OpProfileScope();
  OpProfileScope(const OpProfileScope&) = delete;
  OpProfileScope& operator=(const OpProfileScope&) = delete;

 private:
  const char* op_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace moe::ops
