// The vocabulary the config structs describe themselves in: allowed ranges of numbers, the YAML
// words of enum keys, and the visitor contract.
//
// Decisions:
// - Each section struct has visit(V& v) listing its keys once: v.field(name, member, [Range,] doc).
//   A visitor (config/yaml_io.cpp's reader, writer, checker and key lister) implements
//   section(name, Section&, doc) and field(name, T&, rule, doc), so a new key needs no other code.
// - Enum-like keys are C++ enums whose YAML words come from enum_words(E), found by argument-
//   dependent lookup: the i-th word names the enumerator with value i. The code compares enums
//   (a typo does not compile) while the file, the messages and the docs read the same words.
#pragma once

#include <array>
#include <cstddef>
#include <limits>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/error.h"

namespace moe {

// Allowed values of a numeric key: from lo to hi, each end closed or open.
struct Range {
  static constexpr double unbounded = std::numeric_limits<double>::infinity();
  double lo = -unbounded;
  double hi = unbounded;
  bool lo_open = false;
  bool hi_open = false;

  static constexpr Range at_least(double lo) { return {lo, unbounded, false, false}; }
  static constexpr Range above(double lo) { return {lo, unbounded, true, false}; }
  static constexpr Range within(double lo, double hi) { return {lo, hi, false, false}; }
  // [lo, hi)
  static constexpr Range right_open(double lo, double hi) { return {lo, hi, false, true}; }
};

// An enum whose YAML words enum_words(E{}) lists.
template <class E>
concept ConfigEnum = std::is_enum_v<E> && requires {
  enum_words(E{});
};

// The YAML word of an enum value.
template <ConfigEnum E>
std::string_view word_of(E value) {
  const auto words = enum_words(E{});
  const auto index = static_cast<size_t>(value);
  MOE_ASSERT(index < words.size(), "enum value ", index, " has no config word");
  return words[index];
}

// The enum value a YAML word names; false when none does.
template <ConfigEnum E>
bool parse_word(std::string_view word, E& value) {
  const auto words = enum_words(E{});
  for (size_t i = 0; i < words.size(); ++i) {
    if (words[i] == word) {
      value = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

// Enum keys print as their words in messages and logs.
template <ConfigEnum E>
std::ostream& operator<<(std::ostream& out, E value) {
  return out << word_of(value);
}

// Why a word that is not a choice is refused, when there is more to say than the choices (an enum
// overloads this for the words users try).
template <ConfigEnum E>
std::string_view refusal_reason(E, std::string_view) {
  return {};
}

// "a, b, c": the words an enum key allows, for messages and docs.
template <ConfigEnum E>
std::string allowed_words() {
  std::string text;
  for (std::string_view word : enum_words(E{})) (text += text.empty() ? "" : ", ") += word;
  return text;
}

}  // namespace moe
