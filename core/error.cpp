#include "core/error.h"

namespace moe {

static int g_error_rank = -1;

void set_error_rank(int rank) { g_error_rank = rank; }
int error_rank() { return g_error_rank; }

std::string located_message(const char* file, int line, const std::string& message) {
  std::string where = file;
  const auto slash = where.find_last_of('/');
  const auto parent =
      slash == std::string::npos ? std::string::npos : where.find_last_of('/', slash - 1);
  if (parent != std::string::npos) where = where.substr(parent + 1);  // keep "folder/file.cpp"
  std::string prefix = g_error_rank >= 0 ? "[rank " + std::to_string(g_error_rank) + "] " : "";
  return prefix + where + ":" + std::to_string(line) + ": " + message;
}

}  // namespace moe
