// Config <-> YAML through the visit() lists in config.h.
//
// Decisions:
// - Visitors walk the same lists: KeyLister (the valid key paths, for unknown-key suggestions),
//   ConfigReader/SectionReader (YAML -> values), Writer (values -> YAML) and Checker (validate()).
//   The reader and the checker share check_rule, so a range is enforced with one message whether a
//   value came from a file, a --set or code.
// - Keys are checked before values: all unknown or duplicate keys of a section are reported ahead
// of
//   its type errors, since a misspelt key usually explains the rest.
// - Scalars are parsed here, not by yaml-cpp's as<T>(), which reads "010" as octal and "yes" as a
//   bool. Reals are printed in shortest round-trip form, so print -> parse is exact.
// - Suggestions: a close key of the same section (Levenshtein distance, or containing the typo),
//   else the same key name in another section, else the closest key path anywhere, else the list
//   of valid keys at that level.
#include "trainer/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace moe {
namespace {

struct NoRule {};

// Gives every visitor the three-argument field() (no rule) in terms of its four-argument one.
template <class Derived>
struct FieldVisitor {
  template <class T>
  void field(const char* key, T& value, const char* doc) {
    static_cast<Derived*>(this)->field(key, value, NoRule{}, doc);
  }
};

// Visitors that only read values walk a const Config through the non-const visit().
template <class V>
void visit_const(const Config& config, V& visitor) {
  const_cast<Config&>(config).visit(visitor);
}

// ---- Key paths and suggestions -------------------------------------------------------------

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

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

// The tail of an unknown-key message: "; did you mean 'x'?" or the valid keys at that level.
std::string suggestion(const std::string& path) {
  const bool is_section = path.find('.') == std::string::npos;
  const auto& candidates = is_section ? known_keys().sections : known_keys().keys;
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
  if (is_section) return "; valid sections are: " + join(candidates, ", ");
  std::vector<std::string> siblings;
  for (const auto& c : candidates)
    if (c.compare(0, section.size() + 1, section + ".") == 0) siblings.push_back(leaf_of(c));
  return "; valid keys in '" + section + "' are: " + join(siblings, ", ");
}

// ---- Values as text ------------------------------------------------------------------------

std::string format_number(double x) {
  char buffer[32];
  const auto end = std::to_chars(buffer, buffer + sizeof buffer, x).ptr;
  return std::string(buffer, end);
}

// A real as YAML: shortest round-trip digits, always with a '.', which YAML 1.1 readers (PyYAML)
// need to see a float.
std::string format_real(double x) {
  std::string s = format_number(x);
  if (std::isfinite(x) && s.find('.') == std::string::npos)
    s.insert(std::min(s.find('e'), s.size()), ".0");
  return s;
}

std::string range_text(const Range& r) {
  if (r.hi == Range::unbounded) return (r.lo_open ? "> " : ">= ") + format_number(r.lo);
  return (r.lo_open ? "(" : "[") + format_number(r.lo) + ", " + format_number(r.hi) +
         (r.hi_open ? ")" : "]");
}

bool in_range(double x, const Range& r) {
  return (r.lo_open ? x > r.lo : x >= r.lo) && (r.hi_open ? x < r.hi : x <= r.hi);
}

std::string value_text(int64_t x) { return std::to_string(x); }
std::string value_text(double x) { return format_number(x); }

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

// ---- Rules: the per-key checks shared by the reader and validate() ---------------------------

template <class T>
void check_rule(const std::string&, const T&, NoRule, const std::string&) {}

template <class T>
void check_rule(const std::string& path, const T& value, const Range& range,
                const std::string& where) {
  MOE_CHECK(in_range(static_cast<double>(value), range), "value ", value_text(value), " for '",
            path, "' in ", where, " is out of range: allowed ", range_text(range));
}

void check_rule(const std::string& path, const std::string& value, const Choices& choices,
                const std::string& where) {
  std::vector<std::string> allowed(choices.values.begin(), choices.values.end());
  MOE_CHECK(std::find(allowed.begin(), allowed.end(), value) != allowed.end(), "value '", value,
            "' for '", path, "' in ", where, " is not a valid choice: allowed ",
            join(allowed, ", "));
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
              "' in ", sources.of(path), suggestion(path));
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
    // Integers are read as int64 so that a range error shows the value as written.
    using Read = std::conditional_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int64_t, T>;
    const Read read = parse_scalar<Read>(node, path, where);
    check_rule(path, read, rule, where);
    if constexpr (std::is_same_v<Read, int64_t> && !std::is_same_v<T, int64_t>) {
      check_rule(path, read, narrowed<T>(rule), where);
    }
    value = static_cast<T>(read);
  }

 private:
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
    check_keys(map, name, known_keys().keys, sources_);
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

// ---- Writing and checking ------------------------------------------------------------------

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

class Checker : public FieldVisitor<Checker> {
 public:
  using FieldVisitor::field;
  explicit Checker(const std::string& where) : where_(where) {}

  template <class S>
  void section(const char* name, S& s, const char*) {
    section_ = name;
    s.visit(*this);
  }
  template <class T, class Rule>
  void field(const char* key, T& value, const Rule& rule, const char*) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      check_rule(section_ + "." + key, static_cast<int64_t>(value), rule, where_);
    } else {
      check_rule(section_ + "." + key, value, rule, where_);
    }
  }

 private:
  const std::string& where_;
  std::string section_;
};

}  // namespace

void Config::validate(const std::string& where) const {
  Checker checker(where);
  visit_const(*this, checker);

  const auto& m = model;
  MOE_CHECK(m.n_heads % m.n_kv_heads == 0, "invalid config in ", where,
            ": model.n_kv_heads = ", m.n_kv_heads, " must divide model.n_heads = ", m.n_heads);
  MOE_CHECK(m.head_dim > 0 || m.d_model % m.n_heads == 0, "invalid config in ", where,
            ": model.n_heads = ", m.n_heads, " must divide model.d_model = ", m.d_model,
            " when model.head_dim is 0 (derived)");
  MOE_CHECK(data.seq_len <= m.max_seq_len, "invalid config in ", where,
            ": data.seq_len = ", data.seq_len, " exceeds model.max_seq_len = ", m.max_seq_len);

  MOE_CHECK(moe.top_k <= moe.num_experts, "invalid config in ", where, ": moe.top_k = ", moe.top_k,
            " is out of range: allowed [1, moe.num_experts] = [1, ", moe.num_experts, "]");
  MOE_CHECK(!moe.shared_expert_gate || moe.shared_experts > 0, "invalid config in ", where,
            ": moe.shared_expert_gate needs shared experts (moe.shared_experts = 0)");
  MOE_CHECK(moe.first_k_dense <= m.n_layers, "invalid config in ", where,
            ": moe.first_k_dense = ", moe.first_k_dense, " exceeds model.n_layers = ", m.n_layers);

  const auto& p = parallel;
  if (m.kind == "bts") {
    const std::string bad = "invalid config in " + where + ": model.kind = bts ";
    MOE_CHECK(!bts.seed.empty() && !bts.experts.empty(), bad,
              "needs bts.seed and at least one of bts.experts (checkpoint directories)");
    MOE_CHECK(p.tp == 1 && p.ep == 1 && p.zero == 0 && !p.expert_tp, bad,
              "runs each decoder whole on one rank: the ranks of a replica (world / parallel.dp) "
              "share the decoders, so parallel.tp, parallel.ep must be 1 and parallel.zero 0");
    MOE_CHECK(init.method == "scratch", bad,
              "loads its decoders from bts.seed and bts.experts; init.method must be scratch");
    MOE_CHECK(train.device == "cpu", bad, "trains on the CPU only for now; set train.device: cpu");
  } else {
    MOE_CHECK(bts.seed.empty() && bts.experts.empty() && bts.drop.empty(), "invalid config in ",
              where, ": bts.* is set but model.kind is ", m.kind, "; set model.kind: bts");
  }
  MOE_CHECK(m.n_heads % p.tp == 0 && m.n_kv_heads % p.tp == 0, "invalid config in ", where,
            ": parallel.tp = ", p.tp, " must divide model.n_heads = ", m.n_heads,
            " and model.n_kv_heads = ", m.n_kv_heads);
  MOE_CHECK(m.ffn_hidden % p.tp == 0, "invalid config in ", where, ": parallel.tp = ", p.tp,
            " must divide model.ffn_hidden = ", m.ffn_hidden);
  MOE_CHECK(!m.qk_norm || m.qk_norm_scope == "head" || p.tp == 1, "invalid config in ", where,
            ": model.qk_norm_scope = projection normalizes across heads, which parallel.tp = ",
            p.tp, " splits; it needs parallel.tp = 1");
  MOE_CHECK(m.vocab_size % p.tp == 0, "invalid config in ", where, ": parallel.tp = ", p.tp,
            " must divide model.vocab_size = ", m.vocab_size,
            " (the vocabulary is split over TP; a larger vocab_size than the tokenizer's is fine)");
  const int64_t shared_hidden = int64_t{moe.shared_experts} * moe.effective_shared_expert_hidden();
  MOE_CHECK(shared_hidden % p.tp == 0, "invalid config in ", where, ": parallel.tp = ", p.tp,
            " must divide the shared experts' hidden size moe.shared_experts x "
            "moe.shared_expert_hidden = ",
            shared_hidden);
  MOE_CHECK(!p.expert_tp || moe.expert_hidden % p.tp == 0, "invalid config in ", where,
            ": parallel.tp = ", p.tp, " must divide moe.expert_hidden = ", moe.expert_hidden,
            " when parallel.expert_tp is set");
  if (p.experts == "fssdp") {
    MOE_CHECK(p.tp == 1 && !p.expert_tp, "invalid config in ", where,
              ": parallel.experts = fssdp runs whole experts on single ranks: it needs "
              "parallel.tp = 1 (got ",
              p.tp, ") and no parallel.expert_tp");
    MOE_CHECK(p.zero == 0, "invalid config in ", where,
              ": parallel.experts = fssdp keeps each expert's moments on its owner only; "
              "parallel.zero = 1 is not supported with it yet");
  } else {
    MOE_CHECK(moe.num_experts % p.ep == 0, "invalid config in ", where, ": parallel.ep = ", p.ep,
              " must divide moe.num_experts = ", moe.num_experts,
              " (parallel.experts: fssdp places any number of experts on each rank)");
  }
  MOE_CHECK(p.dp == 0 || p.dp % p.ep == 0, "invalid config in ", where, ": parallel.ep = ", p.ep,
            " must divide parallel.dp = ", p.dp);

  MOE_CHECK(train.min_lr <= train.lr, "invalid config in ", where,
            ": train.min_lr = ", format_number(train.min_lr),
            " exceeds train.lr = ", format_number(train.lr));
  MOE_CHECK(train.warmup_steps <= train.steps, "invalid config in ", where,
            ": train.warmup_steps = ", train.warmup_steps, " exceeds train.steps = ", train.steps);

  MOE_CHECK((init.method == "scratch") == init.from.empty(), "invalid config in ", where,
            ": init.method = '", init.method, "' ",
            init.from.empty()
                ? "needs init.from (the dense checkpoint to upcycle)"
                : "does not read init.from = '" + init.from + "'; use another method or unset it");
}

// Keys of earlier versions that checkpoints still carry in their saved config, rewritten to what
// they mean now: parallel.fssdp (a refused flag, so false in every saved config) became
// parallel.experts.
static void upgrade_legacy_keys(YAML::Node& root) {
  YAML::Node parallel = root["parallel"];
  if (!parallel.IsMap() || !parallel["fssdp"]) return;
  const bool fssdp = parallel["fssdp"].IsScalar() && parallel["fssdp"].as<std::string>() == "true";
  parallel.remove("fssdp");
  if (fssdp && !parallel["experts"]) parallel["experts"] = "fssdp";
}

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
  check_keys(root, "", known_keys().sections, sources);

  Config config;
  ConfigReader reader(root, sources);
  config.visit(reader);
  std::string where = source_name;
  if (!overrides.empty()) where += " with --set " + join(overrides, ", --set ");
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

std::vector<std::string> config_keys() { return known_keys().keys; }

}  // namespace moe
