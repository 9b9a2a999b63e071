#include "config/keys.h"

#include <algorithm>
#include <string_view>

#include "config/visitor.h"

namespace moe {
namespace {

struct KeyLister : FieldVisitor<KeyLister> {
  using FieldVisitor::field;
  std::vector<std::string> sections, keys;

  template <class S>
  void section(const char* name, S& s, const char*) {
    sections.push_back(name);
    s.visit(*this);
  }
  template <class T, class Rule>
  void field(const char* key, T&, const Rule&, const char*) {
    keys.push_back(sections.back() + "." + key);
  }
};

const KeyLister& known_keys() {
  static const KeyLister lister = [] {
    KeyLister l;
    visit_const(Config{}, l);
    return l;
  }();
  return lister;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

std::string leaf_of(const std::string& path) { return path.substr(path.find('.') + 1); }

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

const std::vector<std::string>& config_sections() { return known_keys().sections; }
const std::vector<std::string>& config_keys() { return known_keys().keys; }

std::string key_suggestion(const std::string& path) {
  const bool is_section = path.find('.') == std::string::npos;
  const auto& candidates = is_section ? config_sections() : config_keys();
  const std::string leaf = is_section ? path : leaf_of(path);
  const std::string section = path.substr(0, path.find('.'));
  auto in_section = [&](const std::string& c) { return c.rfind(section + ".", 0) == 0; };
  // The closest key (edit distance, or one name containing the other), within the section or
  // anywhere.
  auto nearest = [&](bool same_section) -> const std::string* {
    const std::string* best = nullptr;
    size_t best_distance = 0;
    for (const auto& c : candidates) {
      if (same_section && !in_section(c)) continue;
      const std::string c_leaf = is_section ? c : leaf_of(c);
      const bool contains =
          std::min(leaf.size(), c_leaf.size()) >= 3 &&
          (c_leaf.find(leaf) != std::string::npos || leaf.find(c_leaf) != std::string::npos);
      const size_t d = edit_distance(path, c);
      if ((d <= std::max<size_t>(2, leaf.size() / 3) || contains) && (!best || d < best_distance)) {
        best = &c;
        best_distance = d;
      }
    }
    return best;
  };
  if (!is_section) {
    if (const std::string* close = nearest(true)) return "; did you mean '" + *close + "'?";
    for (const auto& c : candidates)
      if (leaf_of(c) == leaf) return "; did you mean '" + c + "'?";
  }
  if (const std::string* best = nearest(false)) return "; did you mean '" + *best + "'?";
  if (is_section) return "; valid sections are: " + join(candidates);
  std::vector<std::string> siblings;
  for (const auto& c : candidates)
    if (in_section(c)) siblings.push_back(leaf_of(c));
  return "; valid keys in '" + section + "' are: " + join(siblings);
}

}  // namespace moe
