// JSON for tokenizer files (tokenizer.json, vocab.json): a parser into a value tree, typed access
// whose errors name the file and the key path, and string escaping for the files we write.
//
// Decisions:
// - Our own small parser, not yaml-cpp (which reads JSON as YAML 1.2): yaml-cpp 0.7 rejects
//   surrogate pairs such as "\ud83d\ude00", which Python's json.dump writes for every character
//   outside the BMP, and is slow on the multi-megabyte files of 100k-token vocabularies.
// - Strict RFC 8259: no comments, trailing commas, NaN or raw control characters; lone surrogates
//   are errors (they are not UTF-8). A syntax error is an InputError naming the file, line and
//   column.
// - Objects keep their members in file order, duplicates included; the loaders decide what a
//   duplicate means. Numbers are doubles; as_int() requires an integral value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace moe {

class JsonValue;
using JsonArray = std::vector<JsonValue>;
using JsonObject = std::vector<std::pair<std::string, JsonValue>>;

class JsonValue {
 public:
  using Data = std::variant<std::nullptr_t, bool, double, std::string, JsonArray, JsonObject>;
  JsonValue() : data_(nullptr) {}
  explicit JsonValue(Data data) : data_(std::move(data)) {}
  const Data& data() const { return data_; }
  const char* kind_name() const;  // "null", "a boolean", "a number", "a string", ...

 private:
  Data data_;
};

// Parses a whole document; `file` names it in errors.
JsonValue parse_json(std::string_view text, const std::string& file);
// Reads and parses a file (InputError when it cannot be opened).
JsonValue read_json_file(const std::string& path);

// A value and where it is ("'tokenizer.json': model.vocab"): the typed accessors throw InputError
// naming both when the value is missing or of another type. Refers to the value (which must
// outlive it), not a copy.
class JsonNode {
 public:
  JsonNode(const JsonValue& value, std::string file, std::string path)
      : value_(&value), file_(std::move(file)), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  bool is_null() const { return std::holds_alternative<std::nullptr_t>(value_->data()); }
  JsonNode at(std::string_view key) const;                   // InputError when absent
  std::optional<JsonNode> find(std::string_view key) const;  // nullopt when absent or null
  JsonNode member(const JsonValue& value, std::string_view key) const;  // of as_object()
  JsonNode element(size_t index) const;                                 // InputError if absent

  bool as_bool() const;
  int64_t as_int() const;
  const std::string& as_string() const;
  const JsonArray& as_array() const;
  const JsonObject& as_object() const;

  // Throws InputError "<file>: <path> <problem>".
  [[noreturn]] void fail(const std::string& problem) const;

 private:
  const JsonValue* value_;
  std::string file_;
  std::string path_;
};

// Appends text (UTF-8) as a quoted JSON string: quotes, backslashes and control characters
// escaped, everything else as is.
void append_json_string(std::string& out, std::string_view text);

}  // namespace moe
