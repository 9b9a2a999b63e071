// Metrics file: one JSON object per line (JSONL), one line per record, for tools/plot_metrics.py
// and any other reader (DESIGN.md §5: results come from real runs).
//
// Decisions:
// - A record is an ordered list of (key, value); keys keep the order they were added in, so lines
//   read well with `tail -f`. Values are double, int64, string, or a list of doubles or int64s
//   (per-expert loads). Any integer type is stored as int64; bool is refused rather than silently
//   becoming 0/1.
// - Doubles are written in the shortest form that reads back to the same bits (std::to_chars), with
//   ".0" added when that form looks like an integer, so a reader can tell 3.0 from 3. NaN and
//   infinities have no JSON spelling and are written as null.
// - Strings are escaped for JSON ("\", quote, control characters); other bytes pass through, so
//   strings are expected to be UTF-8.
// - Each line is flushed as soon as it is written: a crashed run keeps every completed record.
// - An empty path disables the writer: write() does nothing, so callers need no branches (ranks
//   other than 0 get an empty path). A fresh run truncates the file. A run resumed at step s keeps
//   the records of steps up to s and drops the later ones (the steps it trains again, from a
//   crash after the last save or an older checkpoint), and a torn last line, then appends: the
//   file reads as the run's history, each step once.
// - Errors (the parent directory cannot be created, the file cannot be opened or written) are
//   InputError naming the path and the system's reason.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace moe {

using MetricValue =
    std::variant<double, int64_t, std::string, std::vector<double>, std::vector<int64_t>>;

class MetricRecord {
 public:
  MetricRecord& add(std::string key, double value) { return put(std::move(key), value); }
  template <std::integral T>
  requires(!std::same_as<T, bool>) MetricRecord& add(std::string key, T value) {
    return put(std::move(key), static_cast<int64_t>(value));
  }
  MetricRecord& add(std::string key, bool value) = delete;
  MetricRecord& add(std::string key, std::string value) { return put(std::move(key), value); }
  MetricRecord& add(std::string key, const char* value) {
    return put(std::move(key), std::string(value));
  }
  MetricRecord& add(std::string key, std::vector<double> value) {
    return put(std::move(key), std::move(value));
  }
  MetricRecord& add(std::string key, std::vector<int64_t> value) {
    return put(std::move(key), std::move(value));
  }

  const std::vector<std::pair<std::string, MetricValue>>& fields() const { return fields_; }
  bool empty() const { return fields_.empty(); }

 private:
  // A repeated key is a bug in the caller (JSON readers would keep only one): InternalError.
  MetricRecord& put(std::string key, MetricValue value);

  std::vector<std::pair<std::string, MetricValue>> fields_;
};

// The record as one JSON object, without the newline.
std::string to_json_line(const MetricRecord& record);

class MetricsWriter {
 public:
  MetricsWriter() = default;  // disabled
  // resumed_at: the step a resumed run goes on from; nullopt for a fresh run.
  explicit MetricsWriter(const std::string& path, std::optional<int64_t> resumed_at = std::nullopt);

  bool enabled() const { return file_ != nullptr; }
  const std::string& path() const { return path_; }

  // Appends the record as one line and flushes it. Does nothing when disabled.
  void write(const MetricRecord& record);

 private:
  struct CloseFile {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  std::string path_;
  std::unique_ptr<std::FILE, CloseFile> file_;
};

}  // namespace moe
