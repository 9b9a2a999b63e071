#include "trainer/watchdog.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "trainer/log_text.h"

namespace moe {
namespace {

Watchdog* g_running = nullptr;  // set and read by the training thread only

}  // namespace

Watchdog::Watchdog(double timeout_s, OnTimeout on_timeout)
    : timeout_s_(timeout_s), on_timeout_(std::move(on_timeout)) {
  if (timeout_s_ <= 0) return;
  thread_ = std::thread([this] { watch(); });
  g_running = this;
}

Watchdog::~Watchdog() {
  if (g_running == this) g_running = nullptr;
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Watchdog::start_step(int64_t step, const char* phase, bool first) {
  if (timeout_s_ <= 0) return;
  {
    std::lock_guard lock(mutex_);
    step_ = step;
    phase_ = phase;
    step_since_ = phase_since_ = Clock::now();
    deadline_ = step_since_ + allowance(first);
  }
  wake_.notify_one();
}

void Watchdog::enter(const char* phase, bool long_phase) {
  if (timeout_s_ <= 0) return;
  {
    std::lock_guard lock(mutex_);
    phase_ = phase;
    phase_since_ = Clock::now();
    if (long_phase) deadline_ = phase_since_ + allowance(true);
  }
  wake_.notify_one();
}

Watchdog::Clock::duration Watchdog::allowance(bool long_allowance) const {
  const double seconds = long_allowance ? kLongAllowance * timeout_s_ : timeout_s_;
  // At most about 30 years, so that a deadline stays within the clock's range.
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::min(seconds, 1e9)));
}

void Watchdog::watch() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (!phase_) {
      wake_.wait(lock);
    } else if (Clock::now() < deadline_) {
      wake_.wait_until(lock, deadline_);
    } else {
      const std::string message = timeout_message();
      lock.unlock();
      on_timeout_(message);
      return;
    }
  }
}

std::string Watchdog::timeout_message() const {
  const auto now = Clock::now();
  const auto seconds = [&](Clock::time_point since) {
    return number_text("%.1f", std::chrono::duration<double>(now - since).count());
  };
  return detail::concat("watchdog: step ", step_, " stuck in ", phase_, " for ",
                        seconds(phase_since_), " s, ", seconds(step_since_),
                        " s into the step (allowed: train.step_timeout_s = ",
                        number_text("%g", timeout_s_), " s, ", number_text("%g", kLongAllowance),
                        " times that for the first step, an evaluation or a checkpoint save); a "
                        "rank may have stopped (a signal, a hung device, a lost network) or a "
                        "collective hangs; aborting the job");
}

void watchdog_phase(const char* phase, bool long_phase) {
  if (g_running) g_running->enter(phase, long_phase);
}

}  // namespace moe
