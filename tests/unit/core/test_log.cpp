// set_log_level: messages less severe than the level are not printed, errors always are.
#include <gtest/gtest.h>

#include "core/log.h"

namespace moe {
namespace {

// What one message of each level prints, stdout then stderr, at the given level.
std::string printed_at(LogLevel least_severe) {
  set_log_level(least_severe);
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  MOE_LOG_INFO("an info");
  MOE_LOG_WARN("a warning");
  MOE_LOG_ERROR("an error");
  std::string out = testing::internal::GetCapturedStdout();
  out += testing::internal::GetCapturedStderr();
  set_log_level(LogLevel::info);
  return out;
}

TEST(LogLevel, InfoPrintsEverything) {
  EXPECT_EQ(printed_at(LogLevel::info), "an info\nwarning: a warning\nerror: an error\n");
}

TEST(LogLevel, WarningDropsInfo) {
  EXPECT_EQ(printed_at(LogLevel::warning), "warning: a warning\nerror: an error\n");
}

TEST(LogLevel, ErrorPrintsOnlyErrors) {
  EXPECT_EQ(printed_at(LogLevel::error), "error: an error\n");
}

}  // namespace
}  // namespace moe
