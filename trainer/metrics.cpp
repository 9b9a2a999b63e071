#include "trainer/metrics.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "core/error.h"
#include "formats/json.h"

namespace moe {
namespace {

void append_number(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  const std::string_view text(buffer, end - buffer);
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
}

void append_number(std::string& out, int64_t value) {
  char buffer[24];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, end);
}

template <typename T>
void append_list(std::string& out, const std::vector<T>& values) {
  out += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    append_number(out, values[i]);
  }
  out += ']';
}

}  // namespace

MetricRecord& MetricRecord::put(std::string key, MetricValue value) {
  for (const auto& field : fields_) {
    MOE_ASSERT(field.first != key, "metric key '", key, "' added twice to one record");
  }
  fields_.emplace_back(std::move(key), std::move(value));
  return *this;
}

std::string to_json_line(const MetricRecord& record) {
  std::string out = "{";
  for (size_t i = 0; i < record.fields().size(); ++i) {
    const auto& [key, value] = record.fields()[i];
    if (i > 0) out += ", ";
    append_json_string(out, key);
    out += ": ";
    std::visit(
        [&out](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::string>) {
            append_json_string(out, v);
          } else if constexpr (std::is_same_v<V, double> || std::is_same_v<V, int64_t>) {
            append_number(out, v);
          } else {
            append_list(out, v);
          }
        },
        value);
  }
  out += '}';
  return out;
}

namespace {

// The record's "step", or -1 for a line that is not a whole record (a line torn by a crash).
int64_t step_of(const std::string& line, const std::string& path) {
  try {
    const JsonValue record = parse_json(line, path);
    return JsonNode(record, path, "").at("step").as_int();
  } catch (const InputError&) {
    return -1;
  }
}

// Keeps the records of steps up to `step`, written back through a temporary file and a rename.
void keep_records_up_to(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;  // no file yet: nothing to keep
  std::string kept, line;
  while (std::getline(in, line)) {
    const int64_t s = step_of(line, path);
    if (s >= 0 && s <= step) kept += line + "\n";
  }
  const std::string temporary = path + ".tmp";
  std::ofstream out(temporary, std::ios::trunc);
  out << kept;
  out.close();
  std::error_code ec;
  if (out) std::filesystem::rename(temporary, path, ec);
  MOE_CHECK(out && !ec, "cannot rewrite metrics file '", path, "' through '", temporary,
            "' (log.metrics_file) for the resumed run: ",
            ec ? ec.message() : "writing the kept records failed");
}

}  // namespace

MetricsWriter::MetricsWriter(const std::string& path, std::optional<int64_t> resumed_at)
    : path_(path) {
  if (path.empty()) return;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    MOE_CHECK(!ec, "cannot create the directory of metrics file '", path,
              "' (log.metrics_file): ", ec.message());
  }
  MOE_CHECK(!std::filesystem::is_directory(path), "metrics file '", path,
            "' (log.metrics_file) is a directory");
  if (resumed_at) keep_records_up_to(path, *resumed_at);
  file_.reset(std::fopen(path.c_str(), resumed_at ? "a" : "w"));
  MOE_CHECK(file_ != nullptr, "cannot open metrics file '", path,
            "' (log.metrics_file): ", std::strerror(errno));
}

void MetricsWriter::write(const MetricRecord& record) {
  if (!enabled()) return;
  const std::string line = to_json_line(record) + "\n";
  const bool written = std::fwrite(line.data(), 1, line.size(), file_.get()) == line.size();
  MOE_CHECK(written && std::fflush(file_.get()) == 0, "cannot write metrics file '", path_,
            "': ", std::strerror(errno));
}

}  // namespace moe
