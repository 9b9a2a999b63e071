// Training byte-level BPE on text files: GPT-2 pre-tokenization, the 256 bytes as the first tokens,
// then the most frequent adjacent pair merged, again and again, until the vocabulary has the size
// asked for, EOD included. The result is saved as a tokenizer.json that Hugging Face tokenizers
// loads (Tokenizer.from_file) and encodes exactly as BpeTokenizer does.
//
// Decisions:
// - Ids: 0..255 are the bytes in byte order, merged tokens follow in the order they were learned,
//   and EOD ("<|endoftext|>", a special token) is last.
// - Deterministic: among pairs of equal count, the one with the smallest (left id, right id) wins,
//   so the same files in the same order give the same tokenizer.json, byte for byte.
// - A pair is counted at every position where it occurs, weighted by how often its word occurs.
//   Within a word a merge joins occurrences left to right (a a a -> aa a).
// - Should a merge spell bytes that already are a token, it reuses that token's id, as HF's trainer
//   does, so the vocabulary never spells a token twice.
// - Scale: files are read in 16 MB blocks cut after a newline that precedes a non-space character,
//   where no GPT-2 word can cross, and distinct words are counted; merges then work on distinct
//   words, updating only those that hold the merged pair, with a lazily corrected max-heap of
//   pair counts. Memory is that of the distinct words, not of the corpus.
// - Training stops early, with a smaller vocabulary, when no adjacent pair is left to merge.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/bpe_tokenizer.h"

namespace moe {

struct BpeTrainerOptions {
  int vocab_size = 0;                                // at least 257: the bytes and EOD
  std::function<void(const std::string&)> progress;  // receives progress lines; may be empty
};

BpeDefinition train_bpe(const std::vector<std::string>& files, const BpeTrainerOptions& options);

// The definition as Hugging Face tokenizer.json text: a ByteLevel pre-tokenizer (the GPT-2 regex,
// no prefix space), a BPE model and the added tokens. For train_bpe's definitions.
std::string to_tokenizer_json(const BpeDefinition& definition);

}  // namespace moe
