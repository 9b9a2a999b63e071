// The byte-level tokenizer: token = byte value (0..255), plus EOD = 256, vocabulary 257.
#pragma once

#include "data/tokenizer.h"

namespace moe {

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kEod = 256;

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> tokens) const override;
  int vocab_size() const override { return 257; }
  int32_t eod_id() const override { return kEod; }
  std::string name() const override { return "byte"; }
};

}  // namespace moe
