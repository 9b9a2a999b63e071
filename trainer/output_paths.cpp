#include "trainer/output_paths.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "parallel/parallel_groups.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

// Creates `dir` when missing; the problem ("" when none).
std::string make_directory(const fs::path& dir) {
  std::error_code error;
  if (fs::exists(dir, error) && !fs::is_directory(dir, error))
    return "'" + dir.string() + "' is not a directory";
  if (!dir.empty()) fs::create_directories(dir, error);
  return error ? "cannot create '" + dir.string() + "': " + error.message() : "";
}

// Opens `file` for writing without changing it (O_APPEND; created and removed when it did not
// exist); the problem ("" when none).
std::string probe_file(const fs::path& file) {
  std::error_code error;
  if (fs::is_directory(file, error)) return "'" + file.string() + "' is a directory";
  const bool existed = fs::exists(file, error);
  const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return "cannot write '" + file.string() + "': " + std::strerror(errno);
  ::close(fd);
  if (!existed && ::unlink(file.c_str()) != 0)
    return "cannot remove '" + file.string() + "' after creating it: " + std::strerror(errno);
  return "";
}

std::string problem_with(const std::string& key, const std::string& path, std::string problem) {
  return problem.empty() ? "" : key + " = '" + path + "': " + problem;
}

std::string check_paths(const Config& config) {
  const std::string& dir = config.checkpoint.dir;
  if (!dir.empty()) {
    std::string problem = make_directory(dir);
    if (problem.empty())
      problem = probe_file(fs::path(dir) / (".write_check." + std::to_string(::getpid())));
    if (!problem.empty()) return problem_with("checkpoint.dir", dir, problem);
  }
  const std::string& metrics = config.log.metrics_file;
  if (!metrics.empty()) {
    std::string problem = make_directory(fs::path(metrics).parent_path());
    if (problem.empty()) problem = probe_file(metrics);
    if (!problem.empty()) return problem_with("log.metrics_file", metrics, problem);
  }
  return "";
}

}  // namespace

void check_output_paths(const Config& config, Communicator* world) {
  std::string problem;
  if (group_rank(world) == 0) problem = check_paths(config);
  broadcast_text(problem, world);
  MOE_CHECK(problem.empty(), problem);
}

}  // namespace moe
