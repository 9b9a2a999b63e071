#include "data/bpe_byte_level.h"

#include <array>

#include "formats/unicode.h"

namespace moe {
namespace {

bool stands_for_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
         (byte >= 0xAE && byte <= 0xFF);
}

struct Alphabet {
  std::array<char32_t, 256> char_of_byte{};
  std::array<int, 0x144> byte_of_char{};  // -1: not in the alphabet
  Alphabet() {
    byte_of_char.fill(-1);
    char32_t next = 0x100;
    for (int byte = 0; byte < 256; ++byte) {
      char_of_byte[byte] = stands_for_itself(byte) ? byte : next++;
      byte_of_char[char_of_byte[byte]] = byte;
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet instance;
  return instance;
}

}  // namespace

std::string to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char byte : bytes)
    unicode::append_utf8(out, alphabet().char_of_byte[static_cast<unsigned char>(byte)]);
  return out;
}

std::optional<std::string> from_byte_level(std::string_view text) {
  std::string bytes;
  for (size_t pos = 0; pos < text.size();) {
    const unicode::Utf8Char ch = unicode::decode_utf8(text, pos);
    if (ch.code >= alphabet().byte_of_char.size() || alphabet().byte_of_char[ch.code] < 0)
      return std::nullopt;
    bytes += static_cast<char>(alphabet().byte_of_char[ch.code]);
    pos += ch.size;
  }
  return bytes;
}

}  // namespace moe
