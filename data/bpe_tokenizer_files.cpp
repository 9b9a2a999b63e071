// Reading a BpeDefinition from Hugging Face's tokenizer.json or from GPT-2's vocab.json +
// merges.txt (declared in bpe_tokenizer.h). Every error names the file and where in it: the key
// path in JSON (model.merges[12]), the line in merges.txt.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "core/error.h"
#include "data/bpe_tokenizer.h"
#include "formats/json.h"

namespace moe {
namespace {

struct Vocab {
  std::unordered_map<std::string, int32_t> ids;   // byte-level spelling -> id
  std::vector<std::optional<std::string>> by_id;  // BpeDefinition::vocab
};

Vocab read_vocab(const JsonNode& field) {
  Vocab vocab;
  for (const auto& [spelling, value] : field.as_object()) {
    const JsonNode entry = field.member(value, spelling);
    const int64_t id = entry.as_int();
    if (id < 0 || id >= (int64_t{1} << 31)) entry.fail("is " + std::to_string(id) + ", not an id");
    if (!vocab.ids.emplace(spelling, static_cast<int32_t>(id)).second)
      entry.fail("appears twice in the vocabulary");
    if (static_cast<size_t>(id) >= vocab.by_id.size()) vocab.by_id.resize(id + 1);
    if (vocab.by_id[id])
      entry.fail("has id " + std::to_string(id) + ", which '" + *vocab.by_id[id] + "' has too");
    vocab.by_id[id] = spelling;
  }
  return vocab;
}

// The merge of left and right; `where` says where it was read ("'f.json': model.merges[3]").
BpeMerge resolve_merge(const Vocab& vocab, const std::string& left, const std::string& right,
                       const std::string& where) {
  const auto id = [&](const std::string& token) {
    const auto it = vocab.ids.find(token);
    MOE_CHECK(it != vocab.ids.end(), where, " merges '", left, "' and '", right,
              "', but the vocabulary has no token '", token, "'");
    return it->second;
  };
  return {id(left), id(right), id(left + right)};
}

// A "left right" merge line (both the old tokenizer.json form and merges.txt).
std::pair<std::string, std::string> split_merge(const std::string& line, const std::string& where) {
  const size_t space = line.find(' ');
  MOE_CHECK(space != std::string::npos && line.find(' ', space + 1) == std::string::npos, where,
            " is '", line, "', expected two tokens separated by one space");
  return {line.substr(0, space), line.substr(space + 1)};
}

std::string type_of(const JsonNode& field) { return field.at("type").as_string(); }

void read_model(const JsonNode& model, BpeDefinition& d) {
  if (type_of(model) != "BPE")
    model.fail("type is '" + type_of(model) + "'; only BPE models are supported");
  if (const auto dropout = model.find("dropout"))
    dropout->fail("is set; BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const auto affix = model.find(key); affix && !affix->as_string().empty())
      affix->fail("is '" + affix->as_string() + "'; byte-level BPE has none");
  }
  if (const auto ignore = model.find("ignore_merges")) d.ignore_merges = ignore->as_bool();
  const Vocab vocab = read_vocab(model.at("vocab"));
  d.vocab = vocab.by_id;
  const JsonNode merges = model.at("merges");
  for (size_t i = 0; i < merges.as_array().size(); ++i) {
    const JsonNode merge = merges.element(i);
    const std::string where = "'" + d.source + "': " + merge.path();
    if (const auto* line = std::get_if<std::string>(&merges.as_array()[i].data())) {
      const auto [left, right] = split_merge(*line, where);
      d.merges.push_back(resolve_merge(vocab, left, right, where));
    } else {
      if (merge.as_array().size() != 2) merge.fail("is not a pair of tokens");
      d.merges.push_back(
          resolve_merge(vocab, merge.element(0).as_string(), merge.element(1).as_string(), where));
    }
  }
}

void read_pre_tokenizer(const JsonNode& root, BpeDefinition& d) {
  const auto pre = root.find("pre_tokenizer");
  if (!pre) root.fail("has no pre_tokenizer; byte-level BPE needs the ByteLevel one");
  std::vector<JsonNode> steps;
  if (type_of(*pre) == "Sequence") {
    const JsonNode list = pre->at("pretokenizers");
    for (size_t i = 0; i < list.as_array().size(); ++i) steps.push_back(list.element(i));
  } else {
    steps.push_back(*pre);
  }
  bool byte_level = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    const JsonNode& step = steps[i];
    const std::string type = type_of(step);
    if (byte_level) step.fail("follows ByteLevel; only Split steps before it are supported");
    if (type == "Split") {
      const auto regex = step.at("pattern").find("Regex");
      if (!regex) step.fail("splits on a plain string; only the supported regexes are");
      const auto pattern = split_pattern_from_regex(regex->as_string());
      if (!pattern)
        regex->fail("'" + regex->as_string() +
                    "' is not supported; supported: the GPT-2, Llama-3 and Qwen2 patterns");
      if (step.at("behavior").as_string() != "Isolated")
        step.fail("has behavior '" + step.at("behavior").as_string() +
                  "'; only Isolated is supported");
      if (const auto invert = step.find("invert"); invert && invert->as_bool())
        invert->fail("is true; inverted splits are not supported");
      d.splits.push_back(*pattern);
    } else if (type == "ByteLevel") {
      byte_level = true;
      d.add_prefix_space = step.at("add_prefix_space").as_bool();
      if (d.add_prefix_space && i != 0)
        step.fail("adds a prefix space after other steps; this is not supported");
      const auto use_regex = step.find("use_regex");
      if (!use_regex || use_regex->as_bool()) d.splits.push_back(SplitPattern::gpt2);
    } else {
      step.fail("is a '" + type + "' pre-tokenizer; only ByteLevel and Split are supported");
    }
  }
  if (!byte_level) pre->fail("has no ByteLevel step; only byte-level BPE is supported");
}

void read_added_tokens(const JsonNode& root, BpeDefinition& d) {
  const auto list = root.find("added_tokens");
  if (!list) return;
  for (size_t i = 0; i < list->as_array().size(); ++i) {
    const JsonNode entry = list->element(i);
    const auto flag = [&](const char* key, bool fallback) {
      const auto field = entry.find(key);
      return field ? field->as_bool() : fallback;
    };
    BpeAddedToken token;
    const int64_t id = entry.at("id").as_int();
    if (id < 0 || id >= (int64_t{1} << 31)) entry.fail("has id " + std::to_string(id));
    token.id = static_cast<int32_t>(id);
    token.content = entry.at("content").as_string();
    if (token.content.empty()) entry.fail("has empty content");
    token.special = flag("special", false);
    token.lstrip = flag("lstrip", false);
    token.rstrip = flag("rstrip", false);
    token.normalized = flag("normalized", !token.special);
    if (flag("single_word", false)) entry.fail("is single_word; this is not supported");
    d.added_tokens.push_back(std::move(token));
  }
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::string& path) {
  const JsonValue document = read_json_file(path);
  const JsonNode root(document, path, "");
  BpeDefinition d;
  d.source = path;
  if (const auto normalizer = root.find("normalizer")) {
    if (type_of(*normalizer) != "NFC")
      normalizer->fail("is '" + type_of(*normalizer) + "'; only NFC is supported");
    d.nfc = true;
  }
  read_pre_tokenizer(root, d);
  if (const auto decoder = root.find("decoder"); decoder && type_of(*decoder) != "ByteLevel")
    decoder->fail("is '" + type_of(*decoder) + "'; only the ByteLevel decoder is supported");
  read_model(root.at("model"), d);
  read_added_tokens(root, d);
  return std::make_unique<BpeTokenizer>(d);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_vocab_and_merges(const std::string& vocab_path,
                                                                  const std::string& merges_path) {
  const JsonValue document = read_json_file(vocab_path);
  const Vocab vocab = read_vocab(JsonNode(document, vocab_path, ""));
  BpeDefinition d;
  d.source = vocab_path + " + " + merges_path;
  d.vocab = vocab.by_id;
  d.splits = {SplitPattern::gpt2};
  std::ifstream in(merges_path, std::ios::binary);
  MOE_CHECK(in, "cannot open merges file '", merges_path, "': ", std::strerror(errno));
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.starts_with("#version")) continue;
    const std::string where = "'" + merges_path + "' line " + std::to_string(number);
    const auto [left, right] = split_merge(line, where);
    d.merges.push_back(resolve_merge(vocab, left, right, where));
  }
  if (const auto eod = vocab.ids.find("<|endoftext|>"); eod != vocab.ids.end())
    d.added_tokens.push_back({.id = eod->second, .content = eod->first, .special = true});
  return std::make_unique<BpeTokenizer>(d);
}

}  // namespace moe
