// How the trainer's log lines write numbers and durations.
//
// Decisions:
// - Numbers go through printf formats ("%.4f", "%.2e"), so every line fixes its own precision and
//   the text is the same on every platform.
// - Durations read as a clock: "mm:ss" below an hour, "h:mm:ss" from an hour on.
#pragma once

#include <string>

namespace moe {

// `value` written with one printf conversion for a double, e.g. number_text("%.4f", loss).
std::string number_text(const char* format, double value);

// Whole seconds as "05:07" or "1:02:05".
std::string clock_text(double seconds);

}  // namespace moe
