// JSON: a strict parser into a value tree, typed access whose errors name the file and the key
// path, and string escaping for the JSON we write. Tokenizer files (tokenizer.json, vocab.json),
// JSON Lines records (data/json_field.h), safetensors headers and Hugging Face config.json files
// (checkpoint/), the metrics file (trainer/metrics.h) and moe-eval --json all use it.
//
// Decisions:
// - In moe_formats (formats/), which needs only core/, so checkpoint/ and trainer/ read and write
//   JSON without linking the tokenizers and datasets of data/.
// - Our own small parser, not yaml-cpp (which reads JSON as YAML 1.2): yaml-cpp 0.7 rejects
//   surrogate pairs such as "\ud83d\ude00", which Python's json.dump writes for every character
//   outside the BMP, and is slow on the multi-megabyte files of 100k-token vocabularies.
// - Strict RFC 8259: no comments, trailing commas, NaN or raw control characters. A lone surrogate
//   (not UTF-8) is an error unless JsonParseOptions says to make it U+FFFD (crawled text has
//   them). Nesting is limited, as the parser recurses. Raw bytes of strings pass through unchecked.
// - A syntax error is a JsonSyntaxError, an InputError naming the file, line and column; it keeps
//   the column and the problem for callers that name the place their own way.
// - Objects keep their members in file order, duplicates included; the callers decide what a
//   duplicate means. Numbers are doubles; as_int() requires an integral value.
// - Escaping writes \" \\ \b \f \n \r \t and \u00XX for the other control characters, as Python's
//   json.dumps and serde_json do; every other byte passes through (the text is UTF-8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/error.h"

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
  Data& data() { return data_; }
  const char* kind_name() const;  // "null", "a boolean", "a number", "a string", ...

 private:
  Data data_;
};

enum class LoneSurrogates { error, replace };  // replace: U+FFFD

struct JsonParseOptions {
  LoneSurrogates lone_surrogates = LoneSurrogates::error;
  int max_depth = 256;          // deeper nesting is an error
  bool require_object = false;  // the document must be an object: "expected a JSON object ('{')"
};

// "malformed JSON in '<file>' at line L, column C: <problem>"; column counts bytes from 1.
class JsonSyntaxError : public InputError {
 public:
  JsonSyntaxError(const std::string& message, size_t column, std::string problem)
      : InputError(message), column_(column), problem_(std::move(problem)) {}
  size_t column() const { return column_; }
  const std::string& problem() const { return problem_; }

 private:
  size_t column_;
  std::string problem_;
};

// Parses a whole document; `file` names it in errors.
JsonValue parse_json(std::string_view text, const std::string& file,
                     const JsonParseOptions& options = {});
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
  double as_number() const;
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
