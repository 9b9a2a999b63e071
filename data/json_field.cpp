#include "data/json_field.h"

#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

#include "core/error.h"

namespace moe {
namespace {

constexpr int kMaxDepth = 512;

void append_utf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

bool is_high_surrogate(uint32_t u) { return u >= 0xD800 && u <= 0xDBFF; }
bool is_low_surrogate(uint32_t u) { return u >= 0xDC00 && u <= 0xDFFF; }
constexpr uint32_t kReplacement = 0xFFFD;

class Parser {
 public:
  Parser(std::string_view text, const std::string& where) : text_(text), where_(where) {}

  std::string field(std::string_view key) {
    skip_space();
    if (peek() != '{') fail("expected a JSON object ('{')", describe_next());
    ++pos_;
    std::optional<std::string> found;
    const char* found_type = nullptr;
    std::vector<std::string> keys;
    skip_space();
    if (peek() == '}') {
      ++pos_;
    } else {
      while (true) {
        skip_space();
        if (peek() != '"') fail("expected a member name (a string)", describe_next());
        std::string name;
        string(&name);
        skip_space();
        expect(':');
        skip_space();
        if (name == key) {
          found_type = type_of_next();
          if (peek() == '"') {
            found.emplace();
            string(&*found);
          } else {
            found.reset();
            value(1);
          }
        } else {
          value(1);
        }
        if (keys.size() < 8) keys.push_back(std::move(name));
        skip_space();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        end_of('}');
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) fail("expected the end of the line after the object", "");
    if (!found) {
      if (found_type)
        fail_at(0, "the value of \"", key, "\" is ", found_type, ", expected a string");
      std::string listed;
      for (const auto& k : keys) listed += (listed.empty() ? "\"" : ", \"") + k + "\"";
      fail_at(0, "the object has no key \"", key,
              "\" (its keys: ", listed.empty() ? "none" : listed,
              "); choose another with --jsonl-key");
    }
    return std::move(*found);
  }

 private:
  template <typename... Args>
  [[noreturn]] void fail_at(size_t pos, const Args&... args) {
    MOE_THROW(InputError, where_, ": column ", pos + 1, ": ", args...);
  }
  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) {
    fail_at(pos_, args...);
  }

  int peek() const { return pos_ < text_.size() ? static_cast<unsigned char>(text_[pos_]) : -1; }

  std::string next_hex() const {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned>(peek()));
    return hex;
  }

  std::string describe_next() const {
    if (pos_ >= text_.size()) return ", found the end of the line";
    const int c = peek();
    if (c >= 0x20 && c < 0x7F) return std::string(", found '") + static_cast<char>(c) + "'";
    return ", found byte " + next_hex();
  }

  const char* type_of_next() const {
    switch (peek()) {
      case '"':
        return "a string";
      case '{':
        return "an object";
      case '[':
        return "an array";
      case 't':
      case 'f':
        return "a boolean";
      case 'n':
        return "null";
      default:
        return "a number";
    }
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\n'))
      ++pos_;
  }

  void expect(char c) {
    if (peek() != static_cast<unsigned char>(c)) fail("expected '", c, "'", describe_next());
    ++pos_;
  }

  // The closing bracket after a member or element.
  void end_of(char close) {
    if (peek() != static_cast<unsigned char>(close))
      fail("expected ',' or '", close, "'", describe_next());
    ++pos_;
  }

  void value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than ", kMaxDepth, " levels");
    switch (peek()) {
      case '"':
        return string(nullptr);
      case '{':
        return container('}', depth, true);
      case '[':
        return container(']', depth, false);
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }

  // An object (members "name": value) or an array (values), after its opening bracket.
  void container(char close, int depth, bool members) {
    ++pos_;
    skip_space();
    if (peek() == close) {
      ++pos_;
      return;
    }
    while (true) {
      skip_space();
      if (members) {
        if (peek() != '"') fail("expected a member name (a string)", describe_next());
        string(nullptr);
        skip_space();
        expect(':');
        skip_space();
      }
      value(depth + 1);
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      end_of(close);
      return;
    }
  }

  void literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) fail("expected a JSON value", describe_next());
    pos_ += word.size();
  }

  void digits() {
    if (peek() < '0' || peek() > '9') fail("expected a digit", describe_next());
    while (peek() >= '0' && peek() <= '9') ++pos_;
  }

  void number() {
    if (peek() == '-') ++pos_;
    if (peek() == '0')
      ++pos_;
    else if (peek() >= '1' && peek() <= '9')
      digits();
    else
      fail("expected a JSON value", describe_next());
    if (peek() == '.') {
      ++pos_;
      digits();
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      digits();
    }
  }

  uint32_t hex4() {
    uint32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      const int c = peek();
      int digit = -1;
      if (c >= '0' && c <= '9') digit = c - '0';
      if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
      if (digit < 0) fail("expected 4 hex digits after \\u", describe_next());
      code = code * 16 + static_cast<uint32_t>(digit);
      ++pos_;
    }
    return code;
  }

  // A string starting at '"'; decoded into out unless out is null.
  void string(std::string* out) {
    const size_t start = pos_;
    ++pos_;
    while (true) {
      const int c = peek();
      if (c < 0) fail_at(start, "the string starting here never ends");
      if (c == '"') {
        ++pos_;
        return;
      }
      if (c < 0x20)
        fail("raw control character ", next_hex(), " in a string (JSON wants it escaped)");
      if (c != '\\') {
        // Copy the run of plain bytes at once.
        size_t end = pos_;
        while (end < text_.size() && text_[end] != '"' && text_[end] != '\\' &&
               static_cast<unsigned char>(text_[end]) >= 0x20)
          ++end;
        if (out) out->append(text_.substr(pos_, end - pos_));
        pos_ = end;
        continue;
      }
      ++pos_;
      const int escape = peek();
      ++pos_;
      char plain = 0;
      switch (escape) {
        case '"':
          plain = '"';
          break;
        case '\\':
          plain = '\\';
          break;
        case '/':
          plain = '/';
          break;
        case 'b':
          plain = '\b';
          break;
        case 'f':
          plain = '\f';
          break;
        case 'n':
          plain = '\n';
          break;
        case 'r':
          plain = '\r';
          break;
        case 't':
          plain = '\t';
          break;
        case 'u': {
          uint32_t code = hex4();
          if (is_high_surrogate(code)) {
            const bool pair = text_.substr(pos_, 2) == "\\u";
            const size_t after_high = pos_;
            uint32_t low = 0;
            if (pair) {
              pos_ += 2;
              low = hex4();
            }
            if (pair && is_low_surrogate(low)) {
              code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            } else {
              code = kReplacement;
              pos_ = after_high;  // the next escape is read on its own
            }
          } else if (is_low_surrogate(code)) {
            code = kReplacement;
          }
          if (out) append_utf8(*out, code);
          continue;
        }
        default:
          pos_ -= 2;
          fail("invalid escape '\\", escape < 0 ? std::string() : std::string(1, char(escape)),
               "' (expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
      }
      if (out) *out += plain;
    }
  }

  std::string_view text_;
  const std::string& where_;
  size_t pos_ = 0;
};

}  // namespace

std::string json_string_field(std::string_view line, std::string_view key,
                              const std::string& where) {
  return Parser(line, where).field(key);
}

}  // namespace moe
