// GPT-2's byte-level alphabet: every byte is written as one printable Unicode character
// (bytes_to_unicode in GPT-2's encoder.py), which is how vocab.json, merges.txt and tokenizer.json
// spell byte-level tokens. Bytes '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF stand for
// themselves; the 68 others, in increasing order, for U+0100..U+0143 (space is 'Ġ', U+0120).
// In memory, tokens are the bytes they stand for; this alphabet exists only in files.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace moe {

// Bytes -> their byte-level spelling (UTF-8).
std::string to_byte_level(std::string_view bytes);

// A byte-level spelling -> the bytes; nullopt when a character is not in the alphabet (e.g. an
// added token such as "<|im_start|>" spelled as itself, or malformed UTF-8).
std::optional<std::string> from_byte_level(std::string_view text);

}  // namespace moe
