#include "formats/json.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "formats/unicode.h"

namespace moe {
namespace {

// The two-character escapes (\" \\ \/ \b \f \n \r \t) and the characters they stand for.
constexpr std::string_view kEscapeLetters = "\"\\/bfnrt";
constexpr std::string_view kEscapedChars = "\"\\/\b\f\n\r\t";
constexpr char32_t kReplacementCharacter = 0xFFFD;

bool is_digit(int c) { return c >= '0' && c <= '9'; }
bool is_high_surrogate(char32_t code) { return code >= 0xD800 && code <= 0xDBFF; }
bool is_low_surrogate(char32_t code) { return code >= 0xDC00 && code <= 0xDFFF; }

std::string hex_byte(unsigned char byte) {
  char hex[8];
  std::snprintf(hex, sizeof(hex), "0x%02x", byte);
  return hex;
}

class Parser {
 public:
  Parser(std::string_view text, const std::string& file, const JsonParseOptions& options)
      : text_(text), file_(file), options_(options) {}

  JsonValue document() {
    skip_space();
    if (options_.require_object && peek() != '{')
      fail("expected a JSON object ('{')" + found_next());
    JsonValue value = parse_value(0);
    skip_space();
    if (!at_end()) fail("unexpected text after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void fail_at(size_t pos, const std::string& problem) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < pos && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line, column = 1;
      } else {
        ++column;
      }
    }
    throw JsonSyntaxError(located_message(__FILE__, __LINE__,
                                          detail::concat("malformed JSON in '", file_, "' at line ",
                                                         line, ", column ", column, ": ", problem)),
                          column, problem);
  }
  [[noreturn]] void fail(const std::string& problem) const { fail_at(pos_, problem); }

  bool at_end() const { return pos_ >= text_.size(); }
  int peek() const { return at_end() ? -1 : static_cast<unsigned char>(text_[pos_]); }

  // ", found 'x'": what stands where the parser is, for the end of an error message.
  std::string found_next() const {
    if (at_end()) return ", found the end of the text";
    const unsigned char c = text_[pos_];
    if (c >= 0x20 && c < 0x7F) return std::string(", found '") + static_cast<char>(c) + "'";
    return ", found byte " + hex_byte(c);
  }

  void skip_space() {
    while (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r') ++pos_;
  }
  void expect(char ch) {
    if (peek() != ch) fail(std::string("expected '") + ch + "'" + found_next());
    ++pos_;
  }

  JsonValue parse_value(int depth) {
    skip_space();
    if (depth > options_.max_depth)
      fail("nesting deeper than " + std::to_string(options_.max_depth) + " levels");
    switch (peek()) {
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
    if (text_.substr(pos_, word.size()) != word)
      fail("expected a JSON value, found an unknown literal");
    pos_ += word.size();
    return value;
  }

  // At an opening bracket: steps past it, and past the closing one when the container is empty.
  bool opens_empty(char close) {
    ++pos_;
    skip_space();
    if (peek() != close) return false;
    ++pos_;
    return true;
  }

  // After a member or element: true past a ',', false past the closing bracket.
  bool more(char close) {
    skip_space();
    if (peek() == ',') return ++pos_, true;
    if (peek() != close) fail(std::string("expected ',' or '") + close + "'" + found_next());
    ++pos_;
    return false;
  }

  JsonObject parse_object(int depth) {
    JsonObject object;
    if (opens_empty('}')) return object;
    do {
      skip_space();
      if (peek() != '"') fail("expected a string key" + found_next());
      std::string key = parse_string();
      skip_space();
      expect(':');
      object.emplace_back(std::move(key), parse_value(depth + 1));
    } while (more('}'));
    return object;
  }

  JsonArray parse_array(int depth) {
    JsonArray array;
    if (opens_empty(']')) return array;
    do {
      array.push_back(parse_value(depth + 1));
    } while (more(']'));
    return array;
  }

  char32_t hex4() {
    char32_t code = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      const int c = peek();
      int digit = -1;
      if (is_digit(c)) digit = c - '0';
      if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
      if (digit < 0) fail("expected 4 hex digits after \\u" + found_next());
      code = code * 16 + static_cast<char32_t>(digit);
    }
    return code;
  }

  char32_t lone_surrogate(const char* problem) const {
    if (options_.lone_surrogates == LoneSurrogates::error) fail(problem);
    return kReplacementCharacter;
  }

  // The code point of the escape whose "\u" was just read; a surrogate pair is one escape here.
  // After a high surrogate without its low one, the next escape is read on its own.
  char32_t unicode_escape() {
    const char32_t code = hex4();
    if (is_low_surrogate(code)) return lone_surrogate("lone low surrogate in a \\u escape");
    if (!is_high_surrogate(code)) return code;
    const size_t after_high = pos_;
    if (text_.substr(pos_, 2) == "\\u") {
      pos_ += 2;
      const char32_t low = hex4();
      if (is_low_surrogate(low)) return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
      pos_ = after_high;
    }
    return lone_surrogate("high surrogate without its low surrogate");
  }

  std::string parse_string() {
    const size_t start = pos_;
    ++pos_;  // '"'
    std::string out;
    while (true) {
      size_t end = pos_;  // of the run of plain bytes, copied at once
      while (end < text_.size() && static_cast<unsigned char>(text_[end]) >= 0x20 &&
             text_[end] != '"' && text_[end] != '\\')
        ++end;
      out.append(text_, pos_, end - pos_);
      pos_ = end;
      if (at_end()) fail_at(start, "the string starting here never ends");
      if (peek() == '"') return ++pos_, out;
      if (peek() != '\\')
        fail("raw control character " + hex_byte(peek()) + " in a string (JSON wants it escaped)");
      if (pos_ + 1 == text_.size()) fail_at(start, "the string starting here never ends");
      const char escape = text_[pos_ + 1];
      const size_t index = kEscapeLetters.find(escape);
      if (escape != 'u' && index == std::string_view::npos)
        fail(std::string("invalid escape '\\") + escape +
             "' (expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
      pos_ += 2;
      if (escape == 'u') {
        unicode::append_utf8(out, unicode_escape());
      } else {
        out += kEscapedChars[index];
      }
    }
  }

  // Digits, at least one.
  void digits() {
    if (!is_digit(peek())) fail("expected a digit" + found_next());
    while (is_digit(peek())) ++pos_;
  }

  double parse_number() {
    const size_t start = pos_;
    if (peek() != '-' && !is_digit(peek())) fail("expected a JSON value" + found_next());
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else {
      digits();
    }
    if (peek() == '.') ++pos_, digits();
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      digits();
    }
    double value = 0;
    const auto result = std::from_chars(text_.data() + start, text_.data() + pos_, value);
    if (result.ec == std::errc::result_out_of_range)
      fail_at(start, "number " + std::string(text_.substr(start, pos_ - start)) +
                         " is out of the range of a double");
    return value;
  }

  std::string_view text_;
  const std::string& file_;
  const JsonParseOptions& options_;
  size_t pos_ = 0;
};

}  // namespace

const char* JsonValue::kind_name() const {
  constexpr const char* kNames[] = {"null",     "a boolean", "a number",
                                    "a string", "an array",  "an object"};
  return kNames[data_.index()];
}

JsonValue parse_json(std::string_view text, const std::string& file,
                     const JsonParseOptions& options) {
  return Parser(text, file, options).document();
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

double JsonNode::as_number() const { return get_as<double>(*this, *value_, "a number"); }

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char ch : text) {
    const size_t index = ch == '/' ? std::string_view::npos : kEscapedChars.find(ch);
    if (index != std::string_view::npos) {
      out += '\\';
      out += kEscapeLetters[index];
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", static_cast<unsigned char>(ch));
      out += escaped;
    } else {
      out += ch;
    }
  }
  out += '"';
}

}  // namespace moe
