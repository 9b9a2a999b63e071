// Byte-level BPE against Hugging Face tokenizers. The oracle is tests/fixtures/tokenizers/ (made by
// tools/make_tokenizer_fixtures.py): for five tokenizers (GPT-2, Llama-3 and Qwen2 regexes, NFC,
// RoBERTa-style prefix space and added tokens, and one trained by our trainer) and ~300 strings,
// the ids HF's encode(s, add_special_tokens=False) gives; encode() must give exactly these. And
// HF's view of Unicode: the class of every code point, case-insensitive contractions, NFC.
// Also: decode inverts encode, EOD, threads, make_tokenizer, the JSON reader, every load error
// naming the file, the trainer (reproducing the fixture HF checked, byte for byte) and the
// train-tokenizer command.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/bpe_byte_level.h"
#include "data/bpe_pretokenizer.h"
#include "data/bpe_tokenizer.h"
#include "data/bpe_trainer.h"
#include "data/train_tokenizer_command.h"
#include "data/unicode_nfc.h"
#include "formats/json.h"
#include "formats/unicode.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::input_error_message;
using testing::mentions;

const fs::path kFixtures = MOE_TOKENIZER_FIXTURES;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Cases {
  std::vector<std::string> strings;
  std::map<std::string, std::vector<std::vector<int32_t>>> ids;  // by tokenizer
};

const Cases& cases() {
  static const Cases loaded = [] {
    const std::string path = (kFixtures / "cases.json").string();
    const JsonValue document = read_json_file(path);
    const JsonNode root(document, path, "");
    Cases c;
    for (const JsonValue& s : root.at("strings").as_array())
      c.strings.push_back(std::get<std::string>(s.data()));
    for (const auto& [name, lists] : root.at("ids").as_object()) {
      for (const JsonValue& list : std::get<JsonArray>(lists.data())) {
        std::vector<int32_t>& ids = c.ids[name].emplace_back();
        for (const JsonValue& id : std::get<JsonArray>(list.data()))
          ids.push_back(static_cast<int32_t>(std::get<double>(id.data())));
      }
    }
    return c;
  }();
  return loaded;
}

BpeTrainerOptions vocab_size(int size) {
  BpeTrainerOptions options;
  options.vocab_size = size;
  return options;
}

std::unique_ptr<BpeTokenizer> fixture(const std::string& name) {
  if (name == "gpt2_files")
    return BpeTokenizer::from_vocab_and_merges((kFixtures / "gpt2" / "vocab.json").string(),
                                               (kFixtures / "gpt2" / "merges.txt").string());
  return BpeTokenizer::from_tokenizer_json((kFixtures / name / "tokenizer.json").string());
}

// The ids HF gave; gpt2_files is the vocab.json + merges.txt reading of gpt2.
const std::vector<std::vector<int32_t>>& expected_ids(const std::string& name) {
  return cases().ids.at(name == "gpt2_files" ? "gpt2" : name);
}

std::string printable(const std::string& s) {
  std::string out;
  for (const unsigned char ch : s.substr(0, 80)) {
    if (ch < 0x20) {
      out += "\\x" + std::to_string(ch);
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

class HuggingFaceFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(HuggingFaceFixture, EncodeGivesTheIdsOfHuggingFace) {
  const std::unique_ptr<BpeTokenizer> tokenizer = fixture(GetParam());
  const auto& strings = cases().strings;
  const auto& expected = expected_ids(GetParam());
  ASSERT_EQ(strings.size(), expected.size());
  ASSERT_GT(strings.size(), 250u);
  int failures = 0;
  for (size_t i = 0; i < strings.size() && failures < 5; ++i) {
    const std::vector<int32_t> ids = tokenizer->encode(strings[i]);
    if (ids != expected[i]) {
      ++failures;
      ADD_FAILURE() << "string " << i << " \"" << printable(strings[i])
                    << "\": " << ::testing::PrintToString(ids) << " but Hugging Face gives "
                    << ::testing::PrintToString(expected[i]);
    }
  }
}

// Byte-level BPE loses nothing: decode gives back the text, added tokens spelled as themselves.
// qwen2 gives it back in NFC (its added token "cafe\u0301" matches "café" too, so both sides are
// compared in NFC); RoBERTa's adds a prefix space and strips white space around <mask>.
TEST_P(HuggingFaceFixture, DecodeInvertsEncode) {
  if (GetParam() == "roberta") GTEST_SKIP() << "prefix space and lstrip/rstrip change the text";
  const std::unique_ptr<BpeTokenizer> tokenizer = fixture(GetParam());
  const auto normal = [&](const std::string& s) {
    return GetParam() == "qwen2" ? unicode::to_nfc(s) : s;
  };
  for (const std::string& s : cases().strings)
    EXPECT_EQ(normal(tokenizer->decode(tokenizer->encode(s))), normal(s)) << printable(s);
  // Bytes that are not UTF-8 (continuation bytes, a surrogate, a truncated character) encode too.
  const std::string invalid = "\xff\xfe abc \xc3( \xed\xa0\x80 x\xe2\x82 \x80\x80 \xf0\x9f\x98";
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(invalid)), invalid);
}

INSTANTIATE_TEST_SUITE_P(Bpe, HuggingFaceFixture,
                         ::testing::Values("gpt2", "gpt2_files", "llama3", "qwen2", "roberta",
                                           "ours"));

// One tokenizer shared by threads, each with its own word cache, gives every thread HF's ids.
TEST(BpeTokenizer, SharedByThreads) {
  const std::unique_ptr<BpeTokenizer> tokenizer = fixture("llama3");
  const auto& strings = cases().strings;
  const auto& expected = expected_ids("llama3");
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t n = 0; n < strings.size(); ++n) {
        const size_t i = (n * 7 + t * 31) % strings.size();  // each thread in its own order
        if (tokenizer->encode(strings[i]) != expected[i]) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong, 0);
}

TEST(BpeTokenizer, VocabularySizeAndEod) {
  struct Expected {
    const char* name;
    int vocab_size;
    int32_t eod;
    const char* eod_text;
  };
  for (const Expected& e :
       {Expected{"gpt2", 1024, 0, "<|endoftext|>"},
        Expected{"gpt2_files", 1024, 0, "<|endoftext|>"},
        Expected{"llama3", 1027, 1, "<|end_of_text|>"}, Expected{"qwen2", 1025, 0, "<|endoftext|>"},
        Expected{"roberta", 1026, 2, "</s>"}, Expected{"ours", 1024, 1023, "<|endoftext|>"}}) {
    const std::unique_ptr<BpeTokenizer> tokenizer = fixture(e.name);
    EXPECT_EQ(tokenizer->vocab_size(), e.vocab_size) << e.name;
    EXPECT_EQ(tokenizer->eod_id(), e.eod) << e.name;
    EXPECT_EQ(tokenizer->decode(std::vector<int32_t>{tokenizer->eod_id()}), e.eod_text) << e.name;
    EXPECT_EQ(tokenizer->encode(e.eod_text), std::vector<int32_t>{e.eod}) << e.name;
    EXPECT_EQ(tokenizer->decode(std::vector<int32_t>{-1, e.vocab_size}),
              "\xEF\xBF\xBD\xEF\xBF\xBD");
  }
  EXPECT_TRUE(mentions(fixture("gpt2")->name(), "gpt2/tokenizer.json"));
}

// The 256 bytes and nothing else: no merges, no added tokens.
BpeDefinition bytes_only() {
  BpeDefinition d;
  d.source = "bytes only";
  for (int byte = 0; byte < 256; ++byte)
    d.vocab.push_back(to_byte_level(std::string(1, static_cast<char>(byte))));
  d.splits = {SplitPattern::gpt2};
  return d;
}

TEST(BpeTokenizer, WithoutAnEodTokenEodIsANewLastId) {
  const BpeTokenizer tokenizer(bytes_only());
  EXPECT_EQ(tokenizer.vocab_size(), 257);
  EXPECT_EQ(tokenizer.eod_id(), 256);
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{'a', 256, 'b'}), "a<|endoftext|>b");
  EXPECT_EQ(tokenizer.encode("<|endoftext|>").size(), 13u);  // not matched in text: bytes
  EXPECT_EQ(tokenizer.encode("h\xc3\xa9"), (std::vector<int32_t>{'h', 0xc3, 0xa9}));
}

TEST(BpeTokenizer, IgnoreMergesTakesVocabularyWordsWhole) {
  BpeDefinition d = bytes_only();
  d.vocab.push_back(to_byte_level("ab"));   // 256, the result of the only merge
  d.vocab.push_back(to_byte_level("abc"));  // 257, reachable by no merge
  d.merges = {{'a', 'b', 256}};
  EXPECT_EQ(BpeTokenizer(d).encode("abc abc"), (std::vector<int32_t>{256, 'c', ' ', 256, 'c'}));
  d.ignore_merges = true;
  EXPECT_EQ(BpeTokenizer(d).encode("abc abc"), (std::vector<int32_t>{257, ' ', 256, 'c'}));
}

TEST(BpeTokenizer, MergesGoByRankNotByPosition) {
  BpeDefinition d = bytes_only();
  d.vocab.push_back(to_byte_level("bc"));  // 256
  d.vocab.push_back(to_byte_level("ab"));  // 257
  d.merges = {{'b', 'c', 256}, {'a', 'b', 257}};
  EXPECT_EQ(BpeTokenizer(d).encode("abc"), (std::vector<int32_t>{'a', 256}));
  std::swap(d.merges[0], d.merges[1]);
  EXPECT_EQ(BpeTokenizer(d).encode("abc"), (std::vector<int32_t>{257, 'c'}));
}

TEST(BpePretokenizer, SplitsAsTheRegexes) {
  const auto split = [](SplitPattern pattern, std::string_view text) {
    std::vector<std::string_view> words;
    split_words(pattern, text, words);
    return std::vector<std::string>(words.begin(), words.end());
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split(SplitPattern::gpt2, "Hello  world's 12345!!\n\n x"),
            (V{"Hello", " ", " world", "'s", " 12345", "!!", "\n\n", " x"}));
  EXPECT_EQ(split(SplitPattern::llama3, "Hello  world'S 12345!!\n\n x"),
            (V{"Hello", " ", " world", "'S", " ", "123", "45", "!!\n\n", " x"}));
  EXPECT_EQ(split(SplitPattern::qwen2, "(x) 123  \n\ty"),
            (V{"(x", ")", " ", "1", "2", "3", "  \n", "\ty"}));
  EXPECT_EQ(split(SplitPattern::gpt2, ""), V{});
  EXPECT_EQ(split_pattern_from_regex(split_pattern_regex(SplitPattern::qwen2)),
            SplitPattern::qwen2);
  EXPECT_EQ(split_pattern_from_regex("\\s+"), std::nullopt);
}

// Every code point's class as HF's regex engine sees it (fixtures/tokenizers/unicode.json).
TEST(BpeUnicode, ClassesAreThoseOfHuggingFace) {
  const std::string path = (kFixtures / "unicode.json").string();
  const JsonValue document = read_json_file(path);
  const JsonArray& runs = JsonNode(document, path, "").at("classes").as_array();
  const std::map<std::string, unicode::CharClass> classes = {{"L", unicode::CharClass::letter},
                                                             {"N", unicode::CharClass::number},
                                                             {"S", unicode::CharClass::space},
                                                             {"O", unicode::CharClass::other}};
  int mismatches = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const JsonArray& run = std::get<JsonArray>(runs[i].data());
    const auto first = static_cast<char32_t>(std::get<double>(run[0].data()));
    const char32_t end = i + 1 < runs.size()
                             ? static_cast<char32_t>(std::get<double>(
                                   std::get<JsonArray>(runs[i + 1].data())[0].data()))
                             : 0x110000;
    const unicode::CharClass expected = classes.at(std::get<std::string>(run[1].data()));
    for (char32_t c = first; c < end; ++c) {
      if ((c < 0xD800 || c > 0xDFFF) && unicode::char_class(c) != expected && ++mismatches <= 5)
        ADD_FAILURE() << "U+" << std::hex << static_cast<uint32_t>(c) << " is not "
                      << std::get<std::string>(run[1].data());
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d) as HF matches it, probed for every letter in each place.
TEST(BpePretokenizer, CaseInsensitiveContractionsAreThoseOfHuggingFace) {
  const std::string path = (kFixtures / "unicode.json").string();
  const JsonValue document = read_json_file(path);
  const std::map<std::string, std::string> probes = {{"s t m d", "'{}a"},
                                                     {"r v", "'{}ea"},
                                                     {"e", "'r{}a"},
                                                     {"l first", "'{}la"},
                                                     {"l second", "'l{}a"}};
  for (const auto& [name, list] : JsonNode(document, path, "").at("contractions").as_object()) {
    std::set<char32_t> expected;
    for (const JsonValue& code : std::get<JsonArray>(list.data()))
      expected.insert(static_cast<char32_t>(std::get<double>(code.data())));
    std::vector<std::string_view> words;
    int matched = 0;
    for (char32_t c = 0; c < 0x110000; ++c) {
      if (unicode::char_class(c) != unicode::CharClass::letter) continue;
      std::string letter, text = probes.at(name);
      unicode::append_utf8(letter, c);
      text.replace(text.find("{}"), 2, letter);
      words.clear();
      split_words(SplitPattern::llama3, text, words);
      const bool contraction = words.size() == 2 && words[1] == "a";
      matched += contraction;
      EXPECT_EQ(contraction, expected.count(c) == 1)
          << name << " U+" << std::hex << static_cast<uint32_t>(c);
    }
    EXPECT_EQ(matched, static_cast<int>(expected.size())) << name;
  }
}

// NFC as HF's normalizer computes it, on every character with a canonical decomposition (alone and
// decomposed), every combining mark, Hangul jamo and random runs of marks (unicode.json "nfc").
TEST(BpeUnicode, NfcIsThatOfHuggingFace) {
  const std::string path = (kFixtures / "unicode.json").string();
  const JsonValue document = read_json_file(path);
  const JsonArray& pairs = JsonNode(document, path, "").at("nfc").as_array();
  ASSERT_GT(pairs.size(), 5000u);
  int mismatches = 0;
  for (const JsonValue& pair : pairs) {
    const std::string& text = std::get<std::string>(std::get<JsonArray>(pair.data())[0].data());
    const std::string& nfc = std::get<std::string>(std::get<JsonArray>(pair.data())[1].data());
    if (unicode::to_nfc(text) != nfc && ++mismatches <= 5)
      ADD_FAILURE() << "NFC of '" << text << "' is '" << unicode::to_nfc(text) << "', HF: '" << nfc
                    << "'";
  }
  EXPECT_EQ(mismatches, 0);
  // Bytes that are not UTF-8 stay, and block composition like any starter.
  EXPECT_EQ(unicode::to_nfc("e\xcc\x81 \xff\xcc\x81 e\xff"), "\xc3\xa9 \xff\xcc\x81 e\xff");
}

TEST(BpeUnicode, Utf8DecodingNeverFails) {
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    std::string text;
    unicode::append_utf8(text, c);
    const unicode::Utf8Char ch = unicode::decode_utf8(text, 0);
    ASSERT_EQ(ch.code, c);
    ASSERT_EQ(ch.size, static_cast<int>(text.size()));
  }
  // Overlong, surrogate, above U+10FFFF, truncated, stray continuation: one invalid byte each.
  for (const std::string bad : {"\xC0\x80", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                "\xE2\x82", "\x80", "\xFF"}) {
    const unicode::Utf8Char ch = unicode::decode_utf8(bad, 0);
    EXPECT_EQ(ch.code, unicode::kInvalidByte) << bad.size();
    EXPECT_EQ(ch.size, 1);
    EXPECT_EQ(unicode::char_class(ch.code), unicode::CharClass::other);
  }
}

TEST(BpeByteLevel, TheGpt2Alphabet) {
  EXPECT_EQ(to_byte_level(" a\n"),
            "\xC4\xA0"
            "a"
            "\xC4\x8A");                                     // Ġ a Ċ
  EXPECT_EQ(to_byte_level("\xC3\xA9"), "\xC3\x83\xC2\xA9");  // é -> Ã ©
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all += static_cast<char>(byte);
  EXPECT_EQ(from_byte_level(to_byte_level(all)), all);
  EXPECT_EQ(from_byte_level("a b"), std::nullopt);  // a raw space is not in the alphabet
  EXPECT_EQ(from_byte_level("\xE4\xB8\xAD"), std::nullopt);
}

TEST(BpeJson, ParsesEscapesAndSurrogatePairs) {
  const std::string file = "inline.json";
  const JsonValue v = parse_json(
      R"( {"s": "a\"\\\/\b\f\n\r\t\u00e9\u4e2d\ud83d\ude00", "n": [-1.5e2, 0, 42], "t": true,
          "f": false, "z": null, "o": {}} )",
      file);
  const JsonNode root(v, file, "");
  EXPECT_EQ(root.at("s").as_string(),
            "a\"\\/\b\f\n\r\t\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");  // é 中 😀
  EXPECT_EQ(std::get<double>(root.at("n").as_array()[0].data()), -150.0);
  EXPECT_EQ(root.at("n").element(2).as_int(), 42);
  EXPECT_TRUE(root.at("t").as_bool());
  EXPECT_FALSE(root.at("f").as_bool());
  EXPECT_FALSE(root.find("z").has_value());
  EXPECT_FALSE(root.find("missing").has_value());
  EXPECT_TRUE(root.at("o").as_object().empty());
  std::string written;
  append_json_string(written, "q\"\\\n\x01\xC3\xA9");
  EXPECT_EQ(written, R"("q\"\\\n\u0001)"
                     "\xC3\xA9\"");
}

TEST(BpeJson, ErrorsNameFileLineAndColumn) {
  const auto error = [](const std::string& text) {
    return input_error_message([&] { parse_json(text, "t.json"); });
  };
  EXPECT_TRUE(mentions(error("{\n  \"a\": 1,\n}"),
                       "malformed JSON in 't.json' at line 3, column 1: expected a string key"));
  EXPECT_TRUE(mentions(error("[1 2]"), "column 4: expected ',' or ']'"));
  EXPECT_TRUE(mentions(error("\"\\ud83d\""), "high surrogate without its low surrogate"));
  EXPECT_TRUE(mentions(error("\"\\ude00\""), "lone low surrogate"));
  EXPECT_TRUE(mentions(error("\"a\tb\""), "column 3: raw control character"));
  EXPECT_TRUE(mentions(error("\"\\x\""), "invalid escape '\\x'"));
  EXPECT_TRUE(mentions(error("{} x"), "unexpected text after the JSON value"));
  EXPECT_TRUE(mentions(error("[01]"), "expected ',' or ']'"));
  EXPECT_TRUE(mentions(error("nul"), "unknown literal"));
  EXPECT_TRUE(mentions(error("\"abc"), "column 1: the string starting here never ends"));
  EXPECT_TRUE(mentions(error(std::string(300, '[')), "nesting deeper than 256 levels"));
  EXPECT_TRUE(mentions(error("[1e999]"), "column 2: number 1e999 is out of the range of a double"));
  const JsonValue v = parse_json(R"({"a": 1.5, "b": "x"})", "t.json");
  const JsonNode root(v, "t.json", "");
  EXPECT_TRUE(mentions(input_error_message([&] { root.at("a").as_int(); }),
                       "'t.json': a is 1.5, expected an integer"));
  EXPECT_TRUE(mentions(input_error_message([&] { root.at("b").as_array(); }),
                       "'t.json': b is a string, expected an array"));
  EXPECT_TRUE(mentions(input_error_message([&] { root.at("c"); }),
                       "'t.json': the document has no key 'c'"));
}

class BpeFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        fs::temp_directory_path() / ("moe_bpe_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // A small valid tokenizer.json: the bytes, the merge a + b, EOD.
    BpeDefinition d = bytes_only();
    d.vocab.push_back(to_byte_level("ab"));
    d.vocab.push_back("<|endoftext|>");
    d.merges = {{'a', 'b', 256}};
    d.added_tokens = {{.id = 257, .content = "<|endoftext|>", .special = true}};
    valid_ = to_tokenizer_json(d);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& contents) {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << contents;
    return path.string();
  }
  // valid_ with `from` replaced by `to` (which must be there), written as tokenizer.json.
  std::string variant(const std::string& from, const std::string& to) {
    std::string text = valid_;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return write("tokenizer.json", text.replace(at, from.size(), to));
  }
  std::string load_error(const std::string& path) {
    return input_error_message([&] { BpeTokenizer::from_tokenizer_json(path); });
  }

  fs::path dir_;
  std::string valid_;
};

TEST_F(BpeFiles, TheValidFileLoads) {
  const std::string path = write("tokenizer.json", valid_);
  const std::unique_ptr<BpeTokenizer> tokenizer = BpeTokenizer::from_tokenizer_json(path);
  EXPECT_EQ(tokenizer->encode("ab<|endoftext|>"), (std::vector<int32_t>{256, 257}));
  EXPECT_EQ(tokenizer->vocab_size(), 258);
}

TEST_F(BpeFiles, MissingAndMalformedFiles) {
  const std::string missing = (dir_ / "none" / "tokenizer.json").string();
  std::string message = load_error(missing);
  EXPECT_TRUE(mentions(message, "cannot open JSON file '" + missing + "'"));
  EXPECT_TRUE(mentions(message, "No such file or directory"));
  const std::string broken = write("tokenizer.json", valid_.substr(0, valid_.size() / 2));
  EXPECT_TRUE(mentions(load_error(broken), "malformed JSON in '" + broken + "' at line "));
  const std::string vocab = write("vocab.json", "{\"a\": 0}");
  const std::string merges = (dir_ / "merges.txt").string();
  EXPECT_TRUE(
      mentions(input_error_message([&] { BpeTokenizer::from_vocab_and_merges(vocab, merges); }),
               "cannot open merges file '" + merges + "'"));
}

TEST_F(BpeFiles, UnsupportedFeaturesAreNamed) {
  std::string path = variant("\"type\": \"BPE\"", "\"type\": \"WordPiece\"");
  EXPECT_TRUE(mentions(load_error(path), "'" + path +
                                             "': model type is 'WordPiece'; only BPE models are "
                                             "supported"));
  path = variant("\"normalizer\": null", "\"normalizer\": {\"type\": \"NFKC\"}");
  EXPECT_TRUE(mentions(load_error(path), "'" + path + "': normalizer is 'NFKC'; only NFC is"));
  path = variant("\"pre_tokenizer\": {\"type\": \"ByteLevel\"",
                 "\"pre_tokenizer\": {\"type\": \"Metaspace\"");
  EXPECT_TRUE(mentions(load_error(path), "'" + path +
                                             "': pre_tokenizer is a 'Metaspace' pre-tokenizer; "
                                             "only ByteLevel and Split are supported"));
  path = variant(
      R"("pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, )"
      R"("use_regex": true})",
      R"("pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": )"
      R"({"Regex": "\\s+"}, "behavior": "Isolated"}, {"type": "ByteLevel", )"
      R"("add_prefix_space": false, "use_regex": false}]})");
  EXPECT_TRUE(mentions(load_error(path),
                       "pre_tokenizer.pretokenizers[0].pattern.Regex '\\s+' is "
                       "not supported; supported: the GPT-2, Llama-3 and Qwen2"));
  path = variant("\"decoder\": {\"type\": \"ByteLevel\"", "\"decoder\": {\"type\": \"WordPiece\"");
  EXPECT_TRUE(mentions(load_error(path), "decoder is 'WordPiece'"));
  path = variant("\"dropout\": null", "\"dropout\": 0.1");
  EXPECT_TRUE(mentions(load_error(path), "model.dropout is set; BPE dropout is not supported"));
  path = variant("\"continuing_subword_prefix\": null", "\"continuing_subword_prefix\": \"##\"");
  EXPECT_TRUE(mentions(load_error(path), "model.continuing_subword_prefix is '##'"));
  path = variant("\"single_word\": false", "\"single_word\": true");
  EXPECT_TRUE(mentions(load_error(path), "added_tokens[0] is single_word; this is not supported"));
  path = variant("\"add_prefix_space\": false", "\"add_prefix_space\": 1");
  EXPECT_TRUE(mentions(load_error(path),
                       "pre_tokenizer.add_prefix_space is a number, expected true or false"));
}

TEST_F(BpeFiles, BadVocabulariesAndMerges) {
  std::string path = variant("\"a b\"", "\"a zz\"");
  EXPECT_TRUE(mentions(load_error(path), "'" + path +
                                             "': model.merges[0] merges 'a' and 'zz', but the "
                                             "vocabulary has no token 'zz'"));
  path = variant("\"a b\"", "[\"b\", \"a\"]");  // the pair form, whose result "ba" is missing
  EXPECT_TRUE(mentions(load_error(path),
                       "model.merges[0] merges 'b' and 'a', but the vocabulary "
                       "has no token 'ba'"));
  path = variant("\"a b\"", "\"ab\"");
  EXPECT_TRUE(mentions(load_error(path), "model.merges[0] is 'ab', expected two tokens"));
  path = variant("\"ab\": 256", "\"ab\": 97");
  EXPECT_TRUE(mentions(load_error(path), "model.vocab.ab has id 97, which 'a' has too"));
  path = variant("\"a\": 97", "\"a\": -3");
  EXPECT_TRUE(mentions(load_error(path), "model.vocab.a is -3, not an id"));
  path = variant("\"z\": 122,", "");
  EXPECT_TRUE(mentions(load_error(path), "has no token for byte 122 ('z'): byte-level BPE needs"));
  path = variant("{\"id\": 257", "{\"id\": 256");
  EXPECT_TRUE(mentions(load_error(path), "added token '<|endoftext|>' of '" + path +
                                             "' has id 256 but id 257 in the model's vocabulary"));

  const std::string vocab = write("vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  const std::string merges = write("merges.txt", "#version: 0.2\na b\nab c\n");
  EXPECT_TRUE(
      mentions(input_error_message([&] { BpeTokenizer::from_vocab_and_merges(vocab, merges); }),
               "'" + merges + "' line 3 merges 'ab' and 'c', but the vocabulary has no token 'c'"));
}

TEST_F(BpeFiles, MakeTokenizerFindsTheFiles) {
  EXPECT_EQ(make_tokenizer("byte")->name(), "byte");
  const std::string json = (kFixtures / "gpt2" / "tokenizer.json").string();
  EXPECT_EQ(make_tokenizer(json)->name(), "bpe:" + json);
  EXPECT_EQ(make_tokenizer((kFixtures / "gpt2").string())->name(), "bpe:" + json);
  fs::create_directories(dir_ / "files");
  for (const char* name : {"vocab.json", "merges.txt"})
    fs::copy_file(kFixtures / "gpt2" / name, dir_ / "files" / name);
  const std::unique_ptr<Tokenizer> from_files = make_tokenizer((dir_ / "files").string());
  EXPECT_TRUE(mentions(from_files->name(), "vocab.json + "));
  EXPECT_EQ(from_files->encode("Hello"), fixture("gpt2")->encode("Hello"));
  fs::create_directories(dir_ / "empty");
  EXPECT_TRUE(mentions(input_error_message([&] { make_tokenizer((dir_ / "empty").string()); }),
                       "holds neither tokenizer.json nor vocab.json + merges.txt"));
  EXPECT_TRUE(mentions(input_error_message([&] { make_tokenizer("bpe"); }),
                       "unknown tokenizer 'bpe': expected byte, a tokenizer.json file"));
}

TEST_F(BpeFiles, TrainerLearnsTheMostFrequentPairsAndStopsWhenNoneIsLeft) {
  const std::string corpus = write("corpus.txt", "ab ab ab cd");
  // Words ab, " ab" x2, " cd": (a,b) 3, then (" ", ab) 2, then the ties at 1 by smallest pair:
  // (" ", c) = (32, 99) before (c, d) = (99, 100); then (" c", d). Then nothing is left.
  std::vector<std::string> progress;
  BpeTrainerOptions options = vocab_size(300);
  options.progress = [&](const std::string& line) { progress.push_back(line); };
  const BpeDefinition d = train_bpe({corpus}, options);
  ASSERT_EQ(d.merges.size(), 4u);
  EXPECT_EQ(d.vocab.size(), 261u);
  const auto spelled = [&](int32_t id) { return from_byte_level(*d.vocab[id]).value(); };
  EXPECT_EQ(spelled(256), "ab");
  EXPECT_EQ(spelled(257), " ab");
  EXPECT_EQ(spelled(258), " c");
  EXPECT_EQ(spelled(259), " cd");
  EXPECT_EQ(d.merges[3].left, 258);
  EXPECT_EQ(d.merges[3].right, 'd');
  EXPECT_EQ(*d.vocab[260], "<|endoftext|>");
  const BpeTokenizer tokenizer(d);
  EXPECT_EQ(tokenizer.eod_id(), 260);
  EXPECT_EQ(tokenizer.encode("ab cd ab"), (std::vector<int32_t>{256, 259, 257}));
  ASSERT_FALSE(progress.empty());
  EXPECT_TRUE(mentions(progress.back(), "no pair left to merge: vocabulary 261 instead of 300"));
  EXPECT_TRUE(mentions(input_error_message([&] { train_bpe({corpus}, vocab_size(256)); }),
                       "BPE vocabulary size 256 is too small"));
  const std::string missing = (dir_ / "missing.txt").string();
  EXPECT_TRUE(mentions(input_error_message([&] { train_bpe({missing}, vocab_size(300)); }),
                       "cannot open training file '" + missing + "'"));
}

// fixtures/tokenizers/ours/tokenizer.json came from this trainer and its ids from HF: training
// again on the same text must give the same file, byte for byte.
TEST(BpeTrainer, ReproducesTheFixtureThatHuggingFaceChecked) {
  const BpeDefinition d = train_bpe({(kFixtures / "train.txt").string()}, vocab_size(1024));
  EXPECT_EQ(to_tokenizer_json(d), read_file(kFixtures / "ours" / "tokenizer.json"));
}

// The trainer reads 16 MB blocks and cuts them only where no GPT-2 word can cross: a corpus bigger
// than a block trains as if read whole. The layout puts the last newline before 16 MB in front of
// "  on", where a cut would make the words "\n", " ", " on" instead of "\n ", " on".
TEST_F(BpeFiles, TrainingOnABigFileMatchesTrainingOnItsWords) {
  const std::string line = "the cat  sat\n  on the mat's edge 123\n";
  const std::string prefix = std::string(26, 'x') + "\n";
  ASSERT_EQ(((size_t{16} << 20) - prefix.size()) % line.size(), 20u);  // inside "  on the ..."
  std::string big = prefix, small = prefix;
  while (big.size() < (size_t{17} << 20)) big += line;
  for (int i = 0; i < 1000; ++i) small += line;
  // Pair counts of big and small are proportional (the prefix aside), so the merges are the same.
  EXPECT_EQ(train_bpe({write("big.txt", big)}, vocab_size(290)).vocab,
            train_bpe({write("small.txt", small)}, vocab_size(290)).vocab);
}

TEST_F(BpeFiles, TrainTokenizerCommand) {
  const std::string first = write("corpus/a.txt", "In the beginning God created the heaven.\n");
  write("corpus/sub/b.txt", "And the earth was without form, and void.\n");
  const std::string extra = write("extra.txt", "And God said, Let there be light.\n");
  const std::string output = (dir_ / "out" / "tokenizer.json").string();
  CLI::App app;
  register_train_tokenizer_command(app);
  app.parse("train-tokenizer --input " + (dir_ / "corpus").string() + " " + extra +
                " --vocab-size 300 --output " + output,
            false);
  const std::unique_ptr<BpeTokenizer> tokenizer = BpeTokenizer::from_tokenizer_json(output);
  EXPECT_EQ(tokenizer->vocab_size(), 300);
  EXPECT_EQ(tokenizer->eod_id(), 299);
  for (const std::string& text : {read_file(first), read_file(extra)}) {
    const std::vector<int32_t> ids = tokenizer->encode(text);
    EXPECT_LT(ids.size(), text.size() / 2);  // 43 merges on 120 bytes compress them well
    EXPECT_EQ(tokenizer->decode(ids), text);
  }
  // Directories contribute their files in path order.
  const std::string second = (dir_ / "corpus" / "sub" / "b.txt").string();
  EXPECT_EQ(read_file(output),
            to_tokenizer_json(train_bpe({first, second, extra}, vocab_size(300))));

  CLI::App bad;
  register_train_tokenizer_command(bad);
  const std::string missing = (dir_ / "nope.txt").string();
  EXPECT_TRUE(mentions(input_error_message([&] {
                         bad.parse("train-tokenizer --input " + missing +
                                       " --vocab-size 300 --output " + output,
                                   false);
                       }),
                       "training input '" + missing + "' is neither a file nor a directory"));
  CLI::App small;
  register_train_tokenizer_command(small);
  EXPECT_THROW(
      small.parse("train-tokenizer --input " + extra + " --vocab-size 100 --output " + output,
                  false),
      CLI::ValidationError);
}

}  // namespace
}  // namespace moe
