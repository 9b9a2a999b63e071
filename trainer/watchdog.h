// Watchdog: a thread that ends the job when a training step stalls. A rank that stops (SIGSTOP, a
// hung device, a dead network) leaves every other rank waiting in a collective that nothing can
// interrupt, so the job would wait forever; the watchdog of a waiting rank notices and calls its
// on_timeout (moe-train: log the error and MPI_Abort every rank).
//
// Decisions:
// - A step (from its start to the start of the next) has train.step_timeout_s. A fixed limit, not
//   a multiple of the median step: it is predictable, and the generous default (30 min) is only
//   there to end a job that would otherwise hang forever.
// - The first step of a run (allocations, first connections) and each evaluation or checkpoint
//   save, which may legitimately take long, get kLongAllowance times as long; such a phase
//   restarts the clock.
// - The step marks its phase (forward/backward, gradient sync, optimizer, ...) through the free
//   function watchdog_phase, so that train_step's other callers (benchmarks, tests) need no
//   watchdog: there is one per process, that is per rank. The message names the step, the phase
//   and how long it waited; it cannot name the rank that stopped (every rank waiting in a
//   collective looks the same from here), only the rank whose watchdog fired.
// - on_timeout runs on the watchdog's thread, at most once. The destructor stops and joins the
//   thread, also when an exception unwinds the loop.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace moe {

class Watchdog {
 public:
  using OnTimeout = std::function<void(const std::string& message)>;
  static constexpr double kLongAllowance = 10;

  // timeout_s = 0: off (no thread). It watches nothing until the first start_step.
  Watchdog(double timeout_s, OnTimeout on_timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Step `step` (as numbered in the log) starts, in phase `phase`; `first`: the run's first step.
  void start_step(int64_t step, const char* phase, bool first);
  // The current step moves on to `phase`; `long_phase` (evaluation, checkpoint save) restarts the
  // clock with the long allowance.
  void enter(const char* phase, bool long_phase);

 private:
  using Clock = std::chrono::steady_clock;
  Clock::duration allowance(bool long_allowance) const;
  void watch();
  std::string timeout_message() const;

  const double timeout_s_;
  const OnTimeout on_timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  int64_t step_ = 0;
  const char* phase_ = nullptr;  // nullptr: not armed yet
  Clock::time_point step_since_, phase_since_, deadline_;
  std::thread thread_;
};

// Marks the current step's phase on this process's watchdog; nothing when none is running.
void watchdog_phase(const char* phase, bool long_phase = false);

}  // namespace moe
