#include "config/rules.h"

#include <charconv>

namespace moe {
namespace {

std::string range_text(const Range& r) {
  if (r.hi == Range::unbounded) return (r.lo_open ? "> " : ">= ") + format_number(r.lo);
  return (r.lo_open ? "(" : "[") + format_number(r.lo) + ", " + format_number(r.hi) +
         (r.hi_open ? ")" : "]");
}

bool in_range(double x, const Range& r) {
  return (r.lo_open ? x > r.lo : x >= r.lo) && (r.hi_open ? x < r.hi : x <= r.hi);
}

template <class T>
void check_range(const std::string& path, T value, const std::string& text, const Range& range,
                 const std::string& where) {
  MOE_CHECK(in_range(static_cast<double>(value), range), "value ", text, " for '", path, "' in ",
            where, " is out of range: allowed ", range_text(range));
}

}  // namespace

std::string format_number(double x) {
  char buffer[32];
  const auto end = std::to_chars(buffer, buffer + sizeof buffer, x).ptr;
  return std::string(buffer, end);
}

void check_rule(const std::string& path, int64_t value, const Range& range,
                const std::string& where) {
  check_range(path, value, std::to_string(value), range, where);
}

void check_rule(const std::string& path, double value, const Range& range,
                const std::string& where) {
  check_range(path, value, format_number(value), range, where);
}

}  // namespace moe
