// Config <-> YAML through the visit() lists of config/model_config.h and config/run_config.h.
//
// Decisions:
// - Keys are checked before values: all unknown or duplicate keys of a section are reported ahead
//   of its type errors, since a misspelt key usually explains the rest.
// - Scalars are parsed here, not by yaml-cpp's as<T>(), which reads "010" as octal and "yes" as a
//   bool. Reals are printed in shortest round-trip form, so print -> parse is exact.
#include "config/yaml_io.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/keys.h"
#include "config/legacy_keys.h"
#include "config/rules.h"
#include "core/error.h"

namespace moe {
namespace {

// ---- Values as text ------------------------------------------------------------------------

// A real as YAML: shortest round-trip digits, always with a '.', which YAML 1.1 readers (PyYAML)
// need to see a float.
std::string format_real(double x) {
  std::string s = format_number(x);
  if (std::isfinite(x) && s.find('.') == std::string::npos)
    s.insert(std::min(s.find('e'), s.size()), ".0");
  return s;
}

// How a YAML value is shown in a message: 'scalar', or the collection in flow style.
std::string node_text(const YAML::Node& node) {
  if (node.IsNull()) return "no value";
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  YAML::Node flow = YAML::Clone(node);
  flow.SetStyle(YAML::EmitterStyle::Flow);
  YAML::Emitter out;
  out << flow;
  return out.c_str();
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), out);
  return error == std::errc() && end == s.data() + s.size();
}

// ---- Reading -------------------------------------------------------------------------------

// Where each key path came from: the file, or the last --set that wrote it or one of its parents.
class Sources {
 public:
  explicit Sources(std::string file) : file_(std::move(file)) {}
  void add_override(std::string path, std::string text) {
    overrides_.push_back({std::move(path), std::move(text)});
  }
  std::string of(const std::string& path) const {
    for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it) {
      if (nested_or_equal(path, it->first) || nested_or_equal(it->first, path))
        return "--set " + it->second;
    }
    return file_;
  }

 private:
  static bool nested_or_equal(const std::string& path, const std::string& parent) {
    return path == parent || path.compare(0, parent.size() + 1, parent + ".") == 0;
  }
  std::string file_;
  std::vector<std::pair<std::string, std::string>> overrides_;
};

// Rejects keys of `map` (at `prefix`) that are not in `valid`, and keys given twice.
void check_keys(const YAML::Node& map, const std::string& prefix,
                const std::vector<std::string>& valid, const Sources& sources) {
  std::vector<std::string> seen;
  for (const auto& entry : map) {
    const std::string key = entry.first.Scalar();
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    MOE_CHECK(std::find(valid.begin(), valid.end(), path) != valid.end(), "unknown key '", path,
              "' in ", sources.of(path), key_suggestion(path));
    MOE_CHECK(std::find(seen.begin(), seen.end(), key) == seen.end(), "duplicate key '", path,
              "' in ", sources.of(path));
    seen.push_back(key);
  }
}

template <class T>
constexpr const char* expected_kind() {
  if constexpr (std::is_same_v<T, std::vector<std::string>>)
    return "a list of strings";
  else if constexpr (std::is_same_v<T, std::string>)
    return "a string";
  else if constexpr (std::is_same_v<T, bool>)
    return "true or false";
  else if constexpr (std::is_same_v<T, int64_t>)
    return "an integer";
  else
    return "a finite number";
}

// Null reads as "" for strings and [] for lists; an integer also accepts an integral real such as
// 1e4.
template <class T>
T parse_scalar(const YAML::Node& node, const std::string& path, const std::string& where) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (node.IsNull()) return "";
  }
  if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (node.IsNull()) return {};
    if (node.IsSequence()) {
      T items;
      for (const YAML::Node& item : node) {
        MOE_CHECK(item.IsScalar(), "wrong type for '", path, "' in ", where,
                  ": expected a list of strings, got the item ", node_text(item));
        items.push_back(item.Scalar());
      }
      return items;
    }
  } else if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if constexpr (std::is_same_v<T, std::string>) {
      return s;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE") return false;
    } else if constexpr (std::is_same_v<T, int64_t>) {
      int64_t i = 0;
      double x = 0;
      if (parse_number(s, i)) return i;
      if (parse_number(s, x) && x == std::floor(x) && std::fabs(x) < 0x1p63)
        return static_cast<int64_t>(x);
    } else {
      double x = 0;
      if (parse_number(s, x) && std::isfinite(x)) return x;
    }
  }
  MOE_THROW(InputError, "wrong type for '", path, "' in ", where, ": expected ", expected_kind<T>(),
            ", got ", node_text(node));
}

// An integer key's rule cut to what its type holds.
template <class T, class Rule>
Range narrowed(const Rule& rule) {
  Range r = Range::within(std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  if constexpr (std::is_same_v<Rule, Range>) {
    if (rule.lo > r.lo) r.lo = rule.lo, r.lo_open = rule.lo_open;
    if (rule.hi < r.hi) r.hi = rule.hi, r.hi_open = rule.hi_open;
  }
  return r;
}

class SectionReader : public FieldVisitor<SectionReader> {
 public:
  using FieldVisitor::field;
  SectionReader(const YAML::Node& map, std::string name, const Sources& sources)
      : map_(map), name_(std::move(name)), sources_(sources) {}

  template <class T, class Rule>
  void field(const char* key, T& value, const Rule& rule, const char*) {
    const YAML::Node node = map_[key];
    if (!node) return;
    const std::string path = name_ + "." + key;
    const std::string where = sources_.of(path);
    if constexpr (ConfigEnum<T>) {
      const std::string word = parse_scalar<std::string>(node, path, where);
      if (!parse_word(word, value)) {
        const std::string_view reason = refusal_reason(T{}, word);
        MOE_THROW(InputError, "value '", word, "' for '", path, "' in ", where,
                  " is not a valid choice: allowed ", allowed_words<T>(),
                  reason.empty() ? "" : " (", reason, reason.empty() ? "" : ")");
      }
    } else {
      read_value(node, path, where, value, rule);
    }
  }

 private:
  // Integers are read as int64 so that a range error shows the value as written.
  template <class T, class Rule>
  static void read_value(const YAML::Node& node, const std::string& path, const std::string& where,
                         T& value, const Rule& rule) {
    using Read = std::conditional_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int64_t, T>;
    const Read read = parse_scalar<Read>(node, path, where);
    check_rule(path, read, rule, where);
    if constexpr (std::is_same_v<Read, int64_t> && !std::is_same_v<T, int64_t>) {
      check_rule(path, read, narrowed<T>(rule), where);
    }
    value = static_cast<T>(read);
  }

  const YAML::Node map_;
  std::string name_;
  const Sources& sources_;
};

class ConfigReader {
 public:
  ConfigReader(const YAML::Node& root, const Sources& sources) : root_(root), sources_(sources) {}

  template <class S>
  void section(const char* name, S& s, const char*) {
    const YAML::Node map = root_[name];
    if (!map || map.IsNull()) return;
    MOE_CHECK(map.IsMap(), "wrong type for '", name, "' in ", sources_.of(name),
              ": expected a mapping of keys, got ", node_text(map));
    check_keys(map, name, config_keys(), sources_);
    SectionReader reader(map, name, sources_);
    s.visit(reader);
  }

 private:
  const YAML::Node root_;
  const Sources& sources_;
};

// Applies "a.b.c=value" to the tree; intermediate keys become mappings.
void apply_override(YAML::Node& root, const std::string& text, Sources& sources) {
  const auto equals = text.find('=');
  MOE_CHECK(equals != std::string::npos, "malformed --set '", text,
            "': expected key.path=value, e.g. --set train.lr=3e-4");
  std::string path = text.substr(0, equals);
  path.erase(0, path.find_first_not_of(" \t"));
  path.erase(path.find_last_not_of(" \t") + 1);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const auto dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    MOE_CHECK(!parts.back().empty(), "malformed --set '", text, "': the key path '", path,
              "' has an empty part");
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(equals + 1));
  } catch (const YAML::Exception& e) {
    MOE_THROW(InputError, "malformed --set '", text, "': the value is not valid YAML: ", e.msg);
  }
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = node[parts[i]];
    if (!child.IsMap()) child = YAML::Node(YAML::NodeType::Map);
    node.reset(child);
  }
  node[parts.back()] = value;
  sources.add_override(path, text);
}

// ---- Writing ------------------------------------------------------------------

class Writer : public FieldVisitor<Writer> {
 public:
  using FieldVisitor::field;
  explicit Writer(YAML::Emitter& out) : out_(out) {}

  template <class S>
  void section(const char* name, S& s, const char* doc) {
    if (!first_) out_ << YAML::Newline << YAML::Newline;  // a blank line, then the section comment
    first_ = false;
    out_ << YAML::Comment(doc) << YAML::Key << name << YAML::Value << YAML::BeginMap;
    s.visit(*this);
    out_ << YAML::EndMap;
  }
  template <class T, class Rule>
  void field(const char* key, T& value, const Rule&, const char* doc) {
    out_ << YAML::Key << key << YAML::Value;
    if constexpr (std::is_same_v<T, double>) {
      out_ << format_real(value);
    } else if constexpr (ConfigEnum<T>) {
      out_ << std::string(word_of(value));
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      out_ << YAML::Flow << YAML::BeginSeq;
      for (const std::string& item : value) out_ << item;
      out_ << YAML::EndSeq;
    } else {
      out_ << value;
    }
    out_ << YAML::Comment(doc);
  }

 private:
  YAML::Emitter& out_;
  bool first_ = true;
};

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    MOE_THROW(InputError, "invalid YAML in ", source_name, " at line ", e.mark.line + 1,
              ", column ", e.mark.column + 1, ": ", e.msg);
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  MOE_CHECK(root.IsMap(), "wrong type for the top level of ", source_name,
            ": expected a mapping of sections, got ", node_text(root));

  upgrade_legacy_keys(root);
  Sources sources(source_name);
  for (const auto& text : overrides) apply_override(root, text, sources);
  check_keys(root, "", config_sections(), sources);

  Config config;
  ConfigReader reader(root, sources);
  config.visit(reader);
  std::string where = source_name;
  for (size_t i = 0; i < overrides.size(); ++i)
    where += (i == 0 ? " with --set " : ", --set ") + overrides[i];
  config.validate(where);
  return config;
}

Config load_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  MOE_CHECK(!std::filesystem::is_directory(yaml_path), "config file '", yaml_path,
            "' is a directory");
  std::ifstream in(yaml_path);
  MOE_CHECK(in, "cannot open config file '", yaml_path, "': ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), yaml_path, overrides);
}

std::string to_yaml(const Config& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  Writer writer(out);
  visit_const(config, writer);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace moe
