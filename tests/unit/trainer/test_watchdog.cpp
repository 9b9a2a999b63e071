// The step watchdog on real threads and clocks: it fires once, naming the step and the phase, when
// a step outlasts its allowance; never while steps keep coming; the first step, evaluations and
// checkpoint saves get the long allowance; off, it runs nothing; it stops cleanly when destroyed,
// also by an exception. (moe-train's abort of every rank is tests/cli/test_moe_train_cli.sh's.)
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "trainer/watchdog.h"

namespace moe {
namespace {

using std::chrono::milliseconds;

// Records what the watchdog reported; fired() waits up to `wait` for it.
struct Reports {
  std::promise<std::string> message;
  std::future<std::string> reported = message.get_future();
  Watchdog::OnTimeout on_timeout() {
    return [this](const std::string& m) { message.set_value(m); };
  }
  bool fired(milliseconds wait) { return reported.wait_for(wait) == std::future_status::ready; }
};

TEST(Watchdog, NamesTheStepAndPhaseThatOutlastedTheTimeout) {
  Reports reports;
  Watchdog watchdog(0.2, reports.on_timeout());
  watchdog.start_step(7, "step start", false);
  watchdog.enter("gradient sync", false);
  ASSERT_TRUE(reports.fired(milliseconds(5000)));
  const std::string message = reports.reported.get();
  EXPECT_NE(message.find("watchdog: step 7 stuck in gradient sync for "), std::string::npos)
      << message;
  EXPECT_NE(message.find("train.step_timeout_s = 0.2 s"), std::string::npos) << message;
}

TEST(Watchdog, StaysQuietWhileStepsKeepComing) {
  Reports reports;
  {
    Watchdog watchdog(1, reports.on_timeout());
    for (int step = 1; step <= 20; ++step) {
      watchdog.start_step(step, "step start", step == 1);
      watchdog_phase("forward/backward");
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  EXPECT_FALSE(reports.fired(milliseconds(0)));
}

TEST(Watchdog, FirstStepEvaluationAndSavesGetTheLongAllowance) {
  Reports reports;
  Watchdog watchdog(0.1, reports.on_timeout());  // 1 s for the long ones
  watchdog.start_step(1, "step start", true);
  EXPECT_FALSE(reports.fired(milliseconds(300)));
  watchdog_phase("evaluation", true);
  EXPECT_FALSE(reports.fired(milliseconds(300)));
  watchdog_phase("checkpoint save", true);
  EXPECT_FALSE(reports.fired(milliseconds(300)));
  watchdog.start_step(2, "step start", false);
  ASSERT_TRUE(reports.fired(milliseconds(5000)));
  EXPECT_NE(reports.reported.get().find("step 2 stuck in step start"), std::string::npos);
}

TEST(Watchdog, OffWatchesNothing) {
  Reports reports;
  Watchdog watchdog(0, reports.on_timeout());
  watchdog.start_step(1, "step start", false);
  watchdog_phase("forward/backward");
  EXPECT_FALSE(reports.fired(milliseconds(200)));
}

TEST(Watchdog, AnExceptionUnwindingTheLoopStopsIt) {
  Reports reports;
  EXPECT_THROW(
      {
        Watchdog watchdog(0.2, reports.on_timeout());
        watchdog.start_step(1, "step start", false);
        throw std::runtime_error("a failing step");
      },
      std::runtime_error);
  EXPECT_FALSE(reports.fired(milliseconds(400)));
  watchdog_phase("forward/backward");  // none running any more: nothing happens
}

}  // namespace
}  // namespace moe
