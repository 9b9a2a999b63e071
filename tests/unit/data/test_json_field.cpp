// The JSON Lines field parser: escapes (surrogate pairs to one UTF-8 character, unpaired ones to
// U+FFFD), nested values of other keys skipped, the last of duplicate keys, raw UTF-8 passed
// through, and every malformed line an InputError naming the line and column.
#include <string>

#include <gtest/gtest.h>

#include "data/json_field.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;

std::string text_of(const std::string& line) { return json_string_field(line, "text", "x:1"); }

std::string error_of(const std::string& line) {
  return input_error_message([&] { text_of(line); });
}

TEST(JsonField, DecodesEscapes) {
  EXPECT_EQ(text_of(R"({"text": "a\"b\\c\/d\b\f\n\r\te"})"), "a\"b\\c/d\b\f\n\r\te");
  EXPECT_EQ(text_of(R"({"text": "caf\u00e9 \u20AC"})"), "caf\xC3\xA9 \xE2\x82\xAC");
  EXPECT_EQ(text_of(R"({"text": "\ud83d\ude00!"})"), "\xF0\x9F\x98\x80!");  // U+1F600
  EXPECT_EQ(text_of(R"({"text": "\u0000"})"), std::string(1, '\0'));
  EXPECT_EQ(text_of("{\"text\": \"raw \xE6\x97\xA5\"}"), "raw \xE6\x97\xA5");
}

TEST(JsonField, UnpairedSurrogatesBecomeReplacementCharacters) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(text_of(R"({"text": "a\ud83db"})"), "a" + fffd + "b");
  EXPECT_EQ(text_of(R"({"text": "\ude00"})"), fffd);
  EXPECT_EQ(text_of(R"({"text": "\ud83d\u0041"})"), fffd + "A");  // high, then no low
}

TEST(JsonField, SkipsOtherValuesAndTakesTheLastDuplicate) {
  EXPECT_EQ(text_of(R"( {"id": -1.5e+3, "meta": {"a": [1, true, null, {"b": "}"}]},)"
                    R"( "text": "hi", "n": 0} )"),
            "hi");
  EXPECT_EQ(text_of(R"({"text": "first", "text": "second"})"), "second");
  EXPECT_EQ(json_string_field(R"({"content": "c", "text": "t"})", "content", "x:1"), "c");
}

TEST(JsonField, MalformedLinesNameTheLineAndColumn) {
  EXPECT_TRUE(
      mentions(error_of("not json"), "x:1: column 1: expected a JSON object ('{'), found 'n'"));
  EXPECT_TRUE(mentions(error_of(R"(["text"])"), "column 1: expected a JSON object"));
  EXPECT_TRUE(
      mentions(error_of(R"({"text": "open)"), "column 10: the string starting here never ends"));
  EXPECT_TRUE(
      mentions(error_of(R"({"text": "a"} {})"), "column 15: unexpected text after the JSON value"));
  EXPECT_TRUE(mentions(error_of(R"({"text": "a",})"), "column 14: expected a string key"));
  EXPECT_TRUE(mentions(error_of(R"({"text": "\x41"})"), "column 11: invalid escape '\\x'"));
  EXPECT_TRUE(mentions(error_of(R"({"text": "\u12G4"})"), "expected 4 hex digits after \\u"));
  EXPECT_TRUE(mentions(error_of("{\"text\": \"a\tb\"}"), "raw control character 0x09"));
  EXPECT_TRUE(
      mentions(error_of(R"({"n": 01, "text": "a"})"), "column 8: expected ',' or '}', found '1'"));
  EXPECT_TRUE(mentions(error_of(R"({"n": tru, "text": "a"})"), "column 7: expected a JSON value"));
  EXPECT_TRUE(mentions(error_of(R"({"n": 1.})"), "column 9: expected a digit"));
  EXPECT_TRUE(mentions(error_of(R"({"text" "a"})"), "column 9: expected ':'"));
  EXPECT_TRUE(mentions(error_of(std::string(600, '[')), "expected a JSON object"));
  EXPECT_TRUE(mentions(error_of(R"({"a": )" + std::string(600, '[')), "nesting deeper than 512"));
}

TEST(JsonField, MissingKeyOrAValueThatIsNoString) {
  EXPECT_TRUE(mentions(error_of(R"({"id": 1, "content": "c"})"),
                       "x:1: column 1: the object has no key \"text\" (its keys: \"id\", "
                       "\"content\"); choose another with --jsonl-key"));
  EXPECT_TRUE(mentions(error_of("{}"), "(its keys: none)"));
  EXPECT_TRUE(mentions(error_of(R"({"text": ["a"]})"), "the value of \"text\" is an array"));
  EXPECT_TRUE(mentions(error_of(R"({"text": "a", "text": null})"), "is null, expected a string"));
}

}  // namespace
}  // namespace moe
