#include "formats/unicode.h"

#include <algorithm>
#include <array>
#include <map>
#include <vector>

namespace moe::unicode {
namespace {

struct Range {
  char32_t first, last;
  CharClass cls;
};

constexpr Range kRanges[] = {
#include "formats/unicode_tables.inc"
};

constexpr int kBlockBits = 8;
constexpr char32_t kBlocks = 0x110000 >> kBlockBits;

class ClassTable {
 public:
  ClassTable() : block_of_(kBlocks) {
    std::vector<CharClass> all(0x110000, CharClass::other);
    for (const Range& r : kRanges) {
      for (char32_t c = r.first; c <= r.last; ++c) all[c] = r.cls;
    }
    std::map<std::array<CharClass, 1 << kBlockBits>, uint16_t> index;
    for (char32_t b = 0; b < kBlocks; ++b) {
      std::array<CharClass, 1 << kBlockBits> block;
      std::copy_n(all.begin() + (b << kBlockBits), block.size(), block.begin());
      const auto [it, added] = index.emplace(block, static_cast<uint16_t>(blocks_.size()));
      if (added) blocks_.push_back(block);
      block_of_[b] = it->second;
    }
  }
  CharClass operator()(char32_t c) const {
    if (c >= 0x110000) return CharClass::other;
    return blocks_[block_of_[c >> kBlockBits]][c & ((1 << kBlockBits) - 1)];
  }

 private:
  std::vector<uint16_t> block_of_;
  std::vector<std::array<CharClass, 1 << kBlockBits>> blocks_;
};

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

}  // namespace

Utf8Char decode_utf8(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return {lead, 1};
  int size;
  char32_t code, min_code;
  if ((lead & 0xE0) == 0xC0) {
    size = 2, code = lead & 0x1F, min_code = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    size = 3, code = lead & 0x0F, min_code = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    size = 4, code = lead & 0x07, min_code = 0x10000;
  } else {
    return {kInvalidByte, 1};
  }
  if (pos + size > text.size()) return {kInvalidByte, 1};
  for (int i = 1; i < size; ++i) {
    if (!is_continuation(byte(i))) return {kInvalidByte, 1};
    code = (code << 6) | (byte(i) & 0x3F);
  }
  if (code < min_code || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
    return {kInvalidByte, 1};
  }
  return {code, size};
}

void append_utf8(std::string& out, char32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

CharClass char_class(char32_t code) {
  static const ClassTable table;
  return table(code);
}

}  // namespace moe::unicode
