#include "kernels/op_profile.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace moe::ops {

namespace {
bool g_enabled = false;
std::map<std::string, OpTime>& totals() {
  static std::map<std::string, OpTime> table;
  return table;
}
}  // namespace

void set_op_profiling(bool enabled) { g_enabled = enabled; }
bool op_profiling() { return g_enabled; }
void reset_op_profile() { totals().clear(); }

OpProfileScope::~OpProfileScope() {
  if (!op_) return;
  OpTime& t = totals()[op_];
  t.op = op_;
  t.calls += 1;
  t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::vector<OpTime> op_profile() {
  std::vector<OpTime> times;
  for (const auto& [name, t] : totals()) times.push_back(t);
  std::sort(times.begin(), times.end(),
            [](const OpTime& a, const OpTime& b) { return a.seconds > b.seconds; });
  return times;
}

std::string format_op_profile(const std::vector<OpTime>& times) {
  double total = 0;
  for (const OpTime& t : times) total += t.seconds;
  std::string text;
  char line[160];
  std::snprintf(line, sizeof line, "%-28s %10s %12s %7s\n", "op", "calls", "seconds", "share");
  text += line;
  for (const OpTime& t : times) {
    std::snprintf(line, sizeof line, "%-28s %10lld %12.3f %6.1f%%\n", t.op.c_str(),
                  static_cast<long long>(t.calls), t.seconds,
                  total > 0 ? 100.0 * t.seconds / total : 0.0);
    text += line;
  }
  return text;
}

}  // namespace moe::ops
