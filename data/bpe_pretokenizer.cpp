#include "data/bpe_pretokenizer.h"

#include <algorithm>
#include <array>

#include "formats/unicode.h"

namespace moe {
namespace {

using unicode::CharClass;

// In SplitPattern order.
constexpr std::array<std::string_view, 3> kRegexes = {
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

// The text as code points with their classes; offsets has one more entry, the text's size.
struct Chars {
  std::vector<char32_t> code;
  std::vector<CharClass> cls;
  std::vector<size_t> offset;

  explicit Chars(std::string_view text) {
    for (size_t pos = 0; pos < text.size();) {
      const unicode::Utf8Char ch = unicode::decode_utf8(text, pos);
      code.push_back(ch.code);
      cls.push_back(unicode::char_class(ch.code));
      offset.push_back(pos);
      pos += ch.size;
    }
    offset.push_back(text.size());
  }
  size_t size() const { return code.size(); }
  bool is(size_t k, CharClass c) const { return k < size() && cls[k] == c; }
  bool is_newline(size_t k) const { return k < size() && (code[k] == '\r' || code[k] == '\n'); }
  // The end of the run of class c starting at k.
  size_t run(size_t k, CharClass c) const {
    while (is(k, c)) ++k;
    return k;
  }
};

// (?i:...) on the contraction letters: ASCII case, and U+017F LATIN SMALL LETTER LONG S, the one
// other character that case-folds to one of s, t, r, e, v, m, l, d.
char32_t fold(char32_t c, bool ignore_case) {
  if (!ignore_case) return c;
  if (c >= 'A' && c <= 'Z') return c + ('a' - 'A');
  return c == 0x17F ? 's' : c;
}

// 's|'t|'re|'ve|'m|'ll|'d at k: the end of the match, or 0.
size_t contraction_end(const Chars& t, size_t k, bool ignore_case) {
  if (t.code[k] != '\'' || k + 1 >= t.size()) return 0;
  const char32_t a = fold(t.code[k + 1], ignore_case);
  const char32_t b = k + 2 < t.size() ? fold(t.code[k + 2], ignore_case) : 0;
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return k + 2;
  if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l')) return k + 3;
  return 0;
}

// \s+(?!\S)|\s+ at whitespace k: the whole run when it ends the text or is one character,
// otherwise all of it but the last character, which then leads the next word.
size_t space_end(const Chars& t, size_t k) {
  const size_t end = t.run(k, CharClass::space);
  return end == t.size() || end - k == 1 ? end : end - 1;
}

bool is_word_class(CharClass c) { return c != CharClass::space; }

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t gpt2_end(const Chars& t, size_t k) {
  if (const size_t end = contraction_end(t, k, false)) return end;
  if (t.code[k] == ' ' && k + 1 < t.size() && is_word_class(t.cls[k + 1]))
    return t.run(k + 1, t.cls[k + 1]);
  if (is_word_class(t.cls[k])) return t.run(k, t.cls[k]);
  return space_end(t, k);
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t llama3_end(const Chars& t, size_t k, size_t max_digits) {
  if (const size_t end = contraction_end(t, k, true)) return end;
  const CharClass c = t.cls[k];
  if (c == CharClass::letter) return t.run(k, CharClass::letter);
  if (c != CharClass::number && !t.is_newline(k) && t.is(k + 1, CharClass::letter))
    return t.run(k + 1, CharClass::letter);
  if (c == CharClass::number) return std::min(t.run(k, CharClass::number), k + max_digits);
  size_t symbols = k;  // where [^\s\p{L}\p{N}]+ starts, if it does
  if (t.code[k] == ' ' && t.is(k + 1, CharClass::other)) symbols = k + 1;
  if (t.is(symbols, CharClass::other)) {
    size_t end = t.run(symbols, CharClass::other);
    while (t.is_newline(end)) ++end;
    return end;
  }
  const size_t spaces_end = t.run(k, CharClass::space);
  for (size_t last = spaces_end; last > k; --last) {  // \s*[\r\n]+: up to the last newline
    if (t.is_newline(last - 1)) return last;
  }
  return space_end(t, k);
}

size_t word_end(SplitPattern pattern, const Chars& t, size_t k) {
  switch (pattern) {
    case SplitPattern::gpt2:
      return gpt2_end(t, k);
    case SplitPattern::llama3:
      return llama3_end(t, k, 3);
    case SplitPattern::qwen2:
      break;
  }
  return llama3_end(t, k, 1);
}

}  // namespace

std::string_view split_pattern_regex(SplitPattern pattern) {
  return kRegexes[static_cast<size_t>(pattern)];
}

std::optional<SplitPattern> split_pattern_from_regex(std::string_view regex) {
  for (size_t i = 0; i < kRegexes.size(); ++i) {
    if (kRegexes[i] == regex) return static_cast<SplitPattern>(i);
  }
  return std::nullopt;
}

void split_words(SplitPattern pattern, std::string_view text,
                 std::vector<std::string_view>& words) {
  const Chars t(text);
  for (size_t k = 0; k < t.size();) {
    const size_t end = word_end(pattern, t, k);
    words.push_back(text.substr(t.offset[k], t.offset[end] - t.offset[k]));
    k = end;
  }
}

}  // namespace moe
