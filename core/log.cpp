#include "core/log.h"

#include <cstdio>

namespace moe {

static int g_rank = 0;
static int g_world_size = 1;
static bool g_info_to_stderr = false;
static LogLevel g_least_severe = LogLevel::info;

void set_log_rank(int rank, int world_size) {
  g_rank = rank;
  g_world_size = world_size;
  set_error_rank(world_size > 1 ? rank : -1);
}

void set_log_level(LogLevel least_severe_printed) { g_least_severe = least_severe_printed; }

void log_info_to_stderr() { g_info_to_stderr = true; }

void log_message(LogLevel level, const std::string& message) {
  if (level < g_least_severe) return;  // never an error: it is the most severe level
  if (level == LogLevel::info && g_rank != 0) return;
  const char* tag = level == LogLevel::info      ? ""
                    : level == LogLevel::warning ? "warning: "
                                                 : "error: ";
  std::FILE* out = level == LogLevel::info && !g_info_to_stderr ? stdout : stderr;
  if (g_world_size > 1)
    std::fprintf(out, "[rank %d] %s%s\n", g_rank, tag, message.c_str());
  else
    std::fprintf(out, "%s%s\n", tag, message.c_str());
  std::fflush(out);
}

}  // namespace moe
