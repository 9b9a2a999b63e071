#include "data/unicode_nfc.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "formats/unicode.h"

namespace moe::unicode {
namespace {

struct CombiningRange {
  char32_t first, last;
  uint8_t ccc;
};
struct Decomposition {
  char32_t code, first, second;  // second is 0 for a one-character decomposition
  bool composes;                 // false: a singleton or a composition exclusion
};
#include "data/unicode_nfc_tables.inc"

// Hangul syllables: S = SBase + (L - LBase) * NCount + (V - VBase) * TCount + (T - TBase).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount;
constexpr char32_t kSCount = kLCount * kNCount;

bool is_syllable(char32_t c) { return c >= kSBase && c < kSBase + kSCount; }

// A byte that is not UTF-8, kept in the code point sequence: above every code point.
char32_t invalid_byte(unsigned char byte) { return kInvalidByte + byte; }

class NfcTables {
 public:
  NfcTables() {
    for (const CombiningRange& r : kCombiningClasses) {
      for (char32_t c = r.first; c <= r.last; ++c) ccc_[c] = r.ccc;
    }
    for (const Decomposition& d : kDecompositions) {
      decomposition_[d.code] = {d.first, d.second};
      if (d.composes) {
        composition_[pair_key(d.first, d.second)] = d.code;
        unstable_.insert(d.second);  // may combine with the character before it
      } else {
        unstable_.insert(d.code);  // never appears in NFC
      }
    }
    for (const auto& [c, ccc] : ccc_) unstable_.insert(c);
  }

  uint8_t ccc(char32_t c) const {
    const auto it = ccc_.find(c);
    return it == ccc_.end() ? 0 : it->second;
  }
  // A starter that is its own NFC and composes with nothing before it.
  bool stable(char32_t c) const {
    if (c < 0x80 || c >= kInvalidByte) return true;
    const bool jamo_vt =
        (c >= kVBase && c < kVBase + kVCount) || (c > kTBase && c < kTBase + kTCount);
    return !jamo_vt && !unstable_.count(c);
  }
  void decompose(char32_t c, std::vector<char32_t>& out) const {
    if (is_syllable(c)) {
      const char32_t s = c - kSBase;
      out.push_back(kLBase + s / kNCount);
      out.push_back(kVBase + (s % kNCount) / kTCount);
      if (s % kTCount) out.push_back(kTBase + s % kTCount);
      return;
    }
    const auto it = decomposition_.find(c);
    if (it == decomposition_.end()) {
      out.push_back(c);
      return;
    }
    decompose(it->second.first, out);
    if (it->second.second) decompose(it->second.second, out);
  }
  // The primary composite of a and b, or 0.
  char32_t compose(char32_t a, char32_t b) const {
    if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
      return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
    if (is_syllable(a) && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
      return a + (b - kTBase);
    const auto it = composition_.find(pair_key(a, b));
    return it == composition_.end() ? 0 : it->second;
  }

 private:
  static uint64_t pair_key(char32_t a, char32_t b) { return (uint64_t{a} << 32) | b; }

  std::unordered_map<char32_t, uint8_t> ccc_;
  std::unordered_map<char32_t, std::pair<char32_t, char32_t>> decomposition_;
  std::unordered_map<uint64_t, char32_t> composition_;
  std::unordered_set<char32_t> unstable_;
};

const NfcTables& tables() {
  static const NfcTables instance;
  return instance;
}

}  // namespace

std::string to_nfc(std::string_view text) {
  const NfcTables& t = tables();
  size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Char ch = decode_utf8(text, pos);
    if (!t.stable(ch.code)) break;
    pos += ch.size;
  }
  if (pos == text.size()) return std::string(text);

  std::vector<char32_t> chars;
  for (pos = 0; pos < text.size();) {
    const Utf8Char ch = decode_utf8(text, pos);
    const char32_t c =
        ch.code == kInvalidByte ? invalid_byte(static_cast<unsigned char>(text[pos])) : ch.code;
    t.decompose(c, chars);
    pos += ch.size;
  }

  // Canonical ordering: each run of non-starters sorted by combining class, stably.
  for (size_t i = 0; i < chars.size();) {
    size_t end = i;
    while (end < chars.size() && t.ccc(chars[end]) != 0) ++end;
    std::stable_sort(chars.begin() + i, chars.begin() + end,
                     [&](char32_t a, char32_t b) { return t.ccc(a) < t.ccc(b); });
    i = end == i ? i + 1 : end;
  }

  // Canonical composition (UAX #15's reference algorithm): a character joins the last starter
  // when nothing between them has a combining class as high as its own.
  size_t starter = 0, kept = 1;
  int last_class = chars.empty() || t.ccc(chars[0]) == 0 ? 0 : 256;
  for (size_t i = 1; i < chars.size(); ++i) {
    const char32_t c = chars[i];
    const int cls = t.ccc(c);
    const char32_t composite = t.compose(chars[starter], c);
    if (composite && (last_class < cls || last_class == 0)) {
      chars[starter] = composite;
      continue;
    }
    if (cls == 0) starter = kept;
    last_class = cls;
    chars[kept++] = c;
  }
  chars.resize(std::min(kept, chars.size()));

  std::string out;
  out.reserve(text.size());
  for (const char32_t c : chars) {
    if (c >= kInvalidByte) {
      out += static_cast<char>(c - kInvalidByte);
    } else {
      append_utf8(out, c);
    }
  }
  return out;
}

}  // namespace moe::unicode
