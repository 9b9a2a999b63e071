#include "data/bpe_json.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/unicode.h"

namespace moe {
namespace {

constexpr int kMaxDepth = 256;

class Parser {
 public:
  Parser(std::string_view text, const std::string& file) : text_(text), file_(file) {}

  JsonValue document() {
    JsonValue value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line, column = 1;
      } else {
        ++column;
      }
    }
    MOE_THROW(InputError, "malformed JSON in '", file_, "' at line ", line, ", column ", column,
              ": ", problem);
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool at_end() const { return pos_ >= text_.size(); }
  void expect(char ch) {
    if (at_end() || text_[pos_] != ch) fail(std::string("expected '") + ch + "'");
    ++pos_;
  }

  JsonValue parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    skip_space();
    if (at_end()) fail("unexpected end of the document");
    switch (text_[pos_]) {
      case '{':
        return JsonValue(parse_object(depth));
      case '[':
        return JsonValue(parse_array(depth));
      case '"':
        return JsonValue(parse_string());
      case 't':
        return literal("true", JsonValue(true));
      case 'f':
        return literal("false", JsonValue(false));
      case 'n':
        return literal("null", JsonValue());
      default:
        return JsonValue(parse_number());
    }
  }

  JsonValue literal(std::string_view word, JsonValue value) {
    if (text_.substr(pos_, word.size()) != word) fail("unknown literal");
    pos_ += word.size();
    return value;
  }

  JsonObject parse_object(int depth) {
    JsonObject object;
    ++pos_;  // '{'
    skip_space();
    if (!at_end() && text_[pos_] == '}') return ++pos_, object;
    while (true) {
      skip_space();
      if (at_end() || text_[pos_] != '"') fail("expected a string key");
      std::string key = parse_string();
      skip_space();
      expect(':');
      object.emplace_back(std::move(key), parse_value(depth + 1));
      skip_space();
      if (!at_end() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (at_end() || text_[pos_] != '}') fail("expected ',' or '}'");
      ++pos_;
      return object;
    }
  }

  JsonArray parse_array(int depth) {
    JsonArray array;
    ++pos_;  // '['
    skip_space();
    if (!at_end() && text_[pos_] == ']') return ++pos_, array;
    while (true) {
      array.push_back(parse_value(depth + 1));
      skip_space();
      if (!at_end() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (at_end() || text_[pos_] != ']') fail("expected ',' or ']'");
      ++pos_;
      return array;
    }
  }

  char32_t hex4() {
    if (pos_ + 4 > text_.size()) fail("truncated \\u escape");
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text_.data() + pos_, text_.data() + pos_ + 4, value, 16);
    if (ec != std::errc() || end != text_.data() + pos_ + 4) fail("bad \\u escape");
    pos_ += 4;
    return value;
  }

  std::string parse_string() {
    ++pos_;  // '"'
    std::string out;
    while (true) {
      const size_t start = pos_;
      while (pos_ < text_.size() && text_[pos_] != '"' && text_[pos_] != '\\' &&
             static_cast<unsigned char>(text_[pos_]) >= 0x20)
        ++pos_;
      out.append(text_, start, pos_ - start);
      if (at_end()) fail("unterminated string");
      const char ch = text_[pos_++];
      if (ch == '"') return out;
      if (ch != '\\') {
        --pos_;
        fail("raw control character in a string");
      }
      if (at_end()) fail("unterminated string");
      const char escape = text_[pos_++];
      switch (escape) {
        case '"':
        case '\\':
        case '/':
          out += escape;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          char32_t code = hex4();
          if (code >= 0xDC00 && code <= 0xDFFF) fail("lone low surrogate in a \\u escape");
          if (code >= 0xD800 && code <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") fail("high surrogate without its low surrogate");
            pos_ += 2;
            const char32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("high surrogate without its low surrogate");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          unicode::append_utf8(out, code);
          break;
        }
        default:
          --pos_;
          fail(std::string("unknown escape '\\") + escape + "'");
      }
    }
  }

  double parse_number() {
    const size_t start = pos_;
    const auto digits = [&] {
      const size_t first = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      if (pos_ == first) fail(first == start ? "expected a value" : "expected a digit");
    };
    if (text_[pos_] == '-') ++pos_;
    if (!at_end() && text_[pos_] == '0') {
      ++pos_;
    } else {
      digits();
    }
    if (!at_end() && text_[pos_] == '.') ++pos_, digits();
    if (!at_end() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (!at_end() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      digits();
    }
    double value = 0;
    std::from_chars(text_.data() + start, text_.data() + pos_, value);
    return value;
  }

  std::string_view text_;
  const std::string& file_;
  size_t pos_ = 0;
};

}  // namespace

const char* JsonValue::kind_name() const {
  constexpr const char* kNames[] = {"null",     "a boolean", "a number",
                                    "a string", "an array",  "an object"};
  return kNames[data_.index()];
}

JsonValue parse_json(std::string_view text, const std::string& file) {
  return Parser(text, file).document();
}

JsonValue read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MOE_CHECK(in, "cannot open JSON file '", path, "': ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_json(text.str(), path);
}

void JsonNode::fail(const std::string& problem) const {
  MOE_THROW(InputError, "'", file_, "': ", path_.empty() ? "the document" : path_, " ", problem);
}

JsonNode JsonNode::member(const JsonValue& value, std::string_view key) const {
  return JsonNode(value, file_, path_.empty() ? std::string(key) : path_ + "." + std::string(key));
}

JsonNode JsonNode::element(size_t index) const {
  const JsonArray& array = as_array();
  if (index >= array.size()) fail("has no element " + std::to_string(index));
  return JsonNode(array[index], file_, path_ + "[" + std::to_string(index) + "]");
}

std::optional<JsonNode> JsonNode::find(std::string_view key) const {
  for (const auto& [name, value] : as_object()) {
    if (name == key) {
      if (std::holds_alternative<std::nullptr_t>(value.data())) return std::nullopt;
      return member(value, key);
    }
  }
  return std::nullopt;
}

JsonNode JsonNode::at(std::string_view key) const {
  for (const auto& [name, value] : as_object()) {
    if (name == key) return member(value, key);
  }
  fail("has no key '" + std::string(key) + "'");
}

namespace {
template <typename T>
const T& get_as(const JsonNode& field, const JsonValue& value, const char* expected) {
  const T* got = std::get_if<T>(&value.data());
  if (!got) field.fail(std::string("is ") + value.kind_name() + ", expected " + expected);
  return *got;
}
}  // namespace

bool JsonNode::as_bool() const { return get_as<bool>(*this, *value_, "true or false"); }
const std::string& JsonNode::as_string() const {
  return get_as<std::string>(*this, *value_, "a string");
}
const JsonArray& JsonNode::as_array() const {
  return get_as<JsonArray>(*this, *value_, "an array");
}
const JsonObject& JsonNode::as_object() const {
  return get_as<JsonObject>(*this, *value_, "an object");
}
int64_t JsonNode::as_int() const {
  const double number = get_as<double>(*this, *value_, "an integer");
  if (number != std::floor(number) || std::fabs(number) > 9.0e15) {
    std::ostringstream text;
    text << "is " << number << ", expected an integer";
    fail(text.str());
  }
  return static_cast<int64_t>(number);
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char ch : text) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", static_cast<unsigned char>(ch));
          out += escaped;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

}  // namespace moe
