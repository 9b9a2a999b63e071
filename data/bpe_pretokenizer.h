// Pre-tokenization for byte-level BPE: the regexes that cut text into words before any merge, as
// Hugging Face tokenizers applies them (Split with behavior Isolated, or ByteLevel with
// use_regex). Merges never cross a word boundary, so this decides the ids as much as the merges.
//
// Decisions:
// - No regex engine. Each supported pattern has a matcher that reproduces, at every position, the
//   regex's leftmost-first alternation with greedy backtracking as Oniguruma runs it; a pattern is
//   recognized by its exact text in tokenizer.json and any other is an InputError at load.
//   Supported: GPT-2's (also RoBERTa, GPT-J, GPT-NeoX, OLMo), Llama-3's (\p{N}{1,3}) and Qwen2's
//   (\p{N}).
// - Matching runs over code points and their class (formats/unicode.h); bytes that are not UTF-8
//   are class other, as if they were symbols, so any byte string splits.
// - Pieces are views into the text; they cover it exactly, in order.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace moe {

enum class SplitPattern { gpt2, llama3, qwen2 };

// The regex text of each pattern, as tokenizer.json spells it (after JSON unescaping).
std::string_view split_pattern_regex(SplitPattern pattern);
std::optional<SplitPattern> split_pattern_from_regex(std::string_view regex);

// Appends the words of text to words.
void split_words(SplitPattern pattern, std::string_view text, std::vector<std::string_view>& words);

}  // namespace moe
