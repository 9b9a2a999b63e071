// Byte-level BPE, encoding exactly as Hugging Face tokenizers does (GPT-2, RoBERTa, GPT-NeoX,
// Llama-3 and Qwen2 style), loaded from a tokenizer.json or from GPT-2's vocab.json + merges.txt,
// or built from a BpeDefinition (what bpe_trainer.h produces).
//
// Decisions:
// - encode() is HF's Tokenizer.encode(text, add_special_tokens=False). Added tokens are cut out
//   first: leftmost-longest, those with normalized=false before those with normalized=true (which
//   are matched after the NFC normalizer, if there is one); lstrip and rstrip swallow the white
//   space beside them. Each span between them gets the prefix space if the ByteLevel pre-tokenizer
//   asks for it, is split into words by the pre-tokenizer regexes, and each word is merged exactly
//   as HF's BPE merges it (lowest rank first, leftmost on ties, a queued pair still valid while it
//   yields the same token), or taken whole when the model has ignore_merges and the word is in the
//   vocabulary. Post-processor templates (BOS/EOS) are not applied: moe-data marks document ends
//   with EOD itself.
// - Whatever a file asks for that is not implemented (a normalizer other than NFC, another
//   pre-tokenizer, regex or decoder, a model other than BPE, dropout, subword prefixes or
//   suffixes, single_word added tokens) is an InputError naming it at load, never a silently
//   different encoding.
// - Tokens are held as the bytes they stand for; the vocabulary must have all 256 single bytes,
//   so every byte string encodes, and decode(encode(s)) == s when s holds no added token (NFC(s)
//   with the NFC normalizer).
// - EOD is the first special added token among "<|endoftext|>" (GPT-2, Qwen2, GPT-NeoX),
//   "<|end_of_text|>" (Llama-3) and "</s>" (RoBERTa). Without one, EOD is a new id one past the
//   largest, spelled "<|endoftext|>" by decode() and never matched in text.
// - Each thread caches the ids of the words it merged (up to 64k words of up to 64 bytes, for one
//   tokenizer at a time), as HF does: words repeat, and merging is most of the time. The cache is
//   invisible: a tokenizer stays immutable and shared by threads.
// - vocab.json + merges.txt follow GPT-2: the GPT-2 regex, no prefix space, and "<|endoftext|>",
//   when the vocabulary has it, a special token (as transformers' GPT-2 tokenizer does).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/bpe_pretokenizer.h"
#include "data/tokenizer.h"

namespace moe {

struct BpeAddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;      // the match takes the white space before it
  bool rstrip = false;      // and after it
  bool normalized = false;  // matched in the second pass, after normalization
};

// Hash for unordered maps keyed by std::string that find by std::string_view without a copy.
struct BpeStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct BpeMerge {
  int32_t left, right, result;
};

// Everything a BpeTokenizer is made of, with tokens as their files spell them.
struct BpeDefinition {
  std::string source;  // the file(s) it came from, for name()
  // By id: the byte-level spelling, nullopt for an unused id.
  std::vector<std::optional<std::string>> vocab;
  std::vector<BpeMerge> merges;  // by rank
  std::vector<BpeAddedToken> added_tokens;
  bool nfc = false;  // the NFC normalizer
  bool ignore_merges = false;
  bool add_prefix_space = false;
  std::vector<SplitPattern> splits;  // applied in order, each to the words of the one before
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(const BpeDefinition& definition);
  ~BpeTokenizer() override;
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::string& path);
  static std::unique_ptr<BpeTokenizer> from_vocab_and_merges(const std::string& vocab_path,
                                                             const std::string& merges_path);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> tokens) const override;
  int vocab_size() const override { return static_cast<int>(token_text_.size()); }
  int32_t eod_id() const override { return eod_id_; }
  std::string name() const override { return "bpe:" + source_; }

 private:
  struct PairTable;
  class AddedTokenMatcher;

  void encode_span(std::string_view text, std::vector<int32_t>& ids) const;
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;

  uint64_t serial_;  // tells this tokenizer's words apart in the per-thread word cache
  std::string source_;
  std::vector<std::optional<std::string>> token_text_;  // by id, what decode() writes
  std::array<int32_t, 256> byte_token_{};
  std::unique_ptr<const PairTable> merges_;
  // bytes -> id, filled only with ignore_merges
  std::unordered_map<std::string, int32_t, BpeStringHash, std::equal_to<>> word_token_;
  bool nfc_ = false;
  bool ignore_merges_ = false;
  bool add_prefix_space_ = false;
  std::vector<SplitPattern> splits_;
  std::unique_ptr<const AddedTokenMatcher> raw_added_;         // normalized == false
  std::unique_ptr<const AddedTokenMatcher> normalized_added_;  // normalized == true
  int32_t eod_id_ = -1;
};

}  // namespace moe
