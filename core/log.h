// Logging: one line per message, prefixed with the rank when there is more than one.
// By default only rank 0 prints info (on stdout); warnings and errors print on every rank (stderr).
// set_log_level raises the least severe level printed (config key log.level); errors always print.
#pragma once

#include <string>

#include "core/error.h"

namespace moe {

enum class LogLevel { info, warning, error };

void set_log_rank(int rank, int world_size);
// Messages less severe than `least_severe_printed` are dropped from now on (default: info).
void set_log_level(LogLevel least_severe_printed);
// Info lines go to stderr too from now on: for tools whose stdout is data (moe-eval --json).
void log_info_to_stderr();
void log_message(LogLevel level, const std::string& message);

}  // namespace moe

#define MOE_LOG_INFO(...) \
  ::moe::log_message(::moe::LogLevel::info, ::moe::detail::concat(__VA_ARGS__))
#define MOE_LOG_WARN(...) \
  ::moe::log_message(::moe::LogLevel::warning, ::moe::detail::concat(__VA_ARGS__))
#define MOE_LOG_ERROR(...) \
  ::moe::log_message(::moe::LogLevel::error, ::moe::detail::concat(__VA_ARGS__))
