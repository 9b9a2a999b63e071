// Tokenizers: text <-> token ids (DESIGN.md §2 data/). One interface for the byte-level tokenizer
// and byte-level BPE (trained here, or loaded from Hugging Face tokenizer.json or GPT-2 style
// vocab.json + merges.txt), so moe-data and the trainer never care which one a dataset used.
//
// Decisions:
// - Every tokenizer has an end-of-document token (EOD): moe-data writes it between documents, and
//   sequences packed across documents see where one ends.
// - encode() takes UTF-8 text (any bytes: byte-level tokenizers cannot fail on input); decode()
//   returns the bytes the ids stand for, with special tokens spelled as their names (e.g.
//   "<|endoftext|>") and unknown ids as U+FFFD.
// - Tokenizers are immutable after loading, so one instance is shared by threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(std::span<const int32_t> tokens) const = 0;
  virtual int vocab_size() const = 0;  // ids are in [0, vocab_size), special tokens included
  virtual int32_t eod_id() const = 0;
  virtual std::string name() const = 0;  // what made it, for logs and dataset metadata
};

// "byte", or the path of a tokenizer.json file, or of a directory holding tokenizer.json or
// vocab.json + merges.txt. InputError when nothing usable is there.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec);

}  // namespace moe
