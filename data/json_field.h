// One string field of a JSON Lines record: the line, parsed by the shared JSON parser
// (formats/json.h), must hold one object; the field is the string under a key of that object.
// moe-data reads the text of each document of a .jsonl file through it.
//
// Decisions:
// - The whole line is validated, not just the field, so a truncated or concatenated record is an
//   error rather than a silently wrong document. Nesting deeper than 512 levels is an error too
//   (the parser recurses).
// - Escapes decode to UTF-8, \uXXXX surrogate pairs to one 4-byte character; an unpaired
//   surrogate, which crawled data does contain and UTF-8 cannot encode, becomes U+FFFD. Raw bytes
//   of strings pass through unchanged (byte-level tokenizers take any bytes).
// - A key given twice takes its last value, as Python's json module does.
// - Errors name the place as "<where>: column C" (a line's byte column; column 1 when the problem
//   is the key or its value), not as the parser's "line 1, column C".
#pragma once

#include <string>
#include <string_view>

namespace moe {

// The string value of member `key` of the JSON object in `line`. InputError starting with
// "<where>: column C:" when the line is not one JSON object, lacks the key or the value is not a
// string.
std::string json_string_field(std::string_view line, std::string_view key,
                              const std::string& where);

}  // namespace moe
