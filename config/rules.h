// The per-key checks that reading a file and Config::validate() share, so a rule is enforced with
// one message whether a value came from a file, a --set or code.
#pragma once

#include <cstdint>
#include <string>

#include "config/schema.h"
#include "config/visitor.h"

namespace moe {

// Shortest round-trip digits.
std::string format_number(double x);

void check_rule(const std::string& path, int64_t value, const Range& range,
                const std::string& where);
void check_rule(const std::string& path, double value, const Range& range,
                const std::string& where);

template <class T>
requires(!std::is_enum_v<T>) void check_rule(const std::string&, const T&, NoRule,
                                             const std::string&) {}

// A value an enum key cannot name (made by a cast in code).
template <ConfigEnum E>
void check_rule(const std::string& path, E value, NoRule, const std::string& where) {
  const auto index = static_cast<size_t>(value);
  MOE_CHECK(index < enum_words(E{}).size(), "value ", index, " for '", path, "' in ", where,
            " is not a valid choice: allowed ", allowed_words<E>());
}

}  // namespace moe
