#include "data/byte_tokenizer.h"

namespace moe {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> tokens(text.size());
  for (size_t i = 0; i < text.size(); ++i) tokens[i] = static_cast<unsigned char>(text[i]);
  return tokens;
}

std::string ByteTokenizer::decode(std::span<const int32_t> tokens) const {
  std::string text;
  text.reserve(tokens.size());
  for (int32_t t : tokens) {
    if (t >= 0 && t < 256)
      text.push_back(static_cast<char>(t));
    else if (t == kEod)
      text += "<|endoftext|>";
    else
      text += "\xEF\xBF\xBD";  // U+FFFD
  }
  return text;
}

}  // namespace moe
