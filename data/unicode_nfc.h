// Unicode NFC normalization (UAX #15: canonical decomposition, canonical ordering, canonical
// composition), for tokenizer.json files whose normalizer is NFC (Qwen2, GPT-NeoX). No ICU.
//
// Decisions:
// - HF's NFC, not today's: HF normalizes with the unicode-normalization-alignments crate, whose
//   tables are Unicode 9.0, so data/unicode_nfc_tables.inc (tools/make_unicode_tables.py) is 9.0
//   too: combining marks added since have class 0 and characters added since do not decompose,
//   as in HF (tests/fixtures/tokenizers/unicode.json). Hangul syllables are composed and decomposed
//   by arithmetic.
// - Fast path: text made only of characters that are starters, their own NFC, and combine with
//   nothing before them (ASCII, precomposed Latin, CJK, Hangul syllables...) is already NFC and is
//   returned as is after one lookup per non-ASCII character; anything else takes the full
//   algorithm over the whole text.
// - Bytes that are not UTF-8 pass through unchanged, as starters that compose with nothing.
#pragma once

#include <string>
#include <string_view>

namespace moe::unicode {

std::string to_nfc(std::string_view text);

}  // namespace moe::unicode
