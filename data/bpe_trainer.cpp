#include "data/bpe_trainer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "data/bpe_byte_level.h"
#include "formats/json.h"
#include "formats/unicode.h"

namespace moe {
namespace {

constexpr size_t kBlockBytes = size_t{16} << 20;
constexpr const char* kEod = "<|endoftext|>";

using WordCounts = std::unordered_map<std::string, int64_t, BpeStringHash, std::equal_to<>>;

// Where text may be cut so that no GPT-2 word crosses the cut: just after the last newline that
// is followed by a character other than white space; 0 when there is none.
size_t last_safe_cut(std::string_view text) {
  for (size_t newline = text.rfind('\n'); newline != std::string_view::npos && newline > 0;
       newline = text.rfind('\n', newline - 1)) {
    const size_t next = newline + 1;
    if (next < text.size() &&
        unicode::char_class(unicode::decode_utf8(text, next).code) != unicode::CharClass::space)
      return next;
  }
  return 0;
}

void count_words(std::string_view text, WordCounts& counts, std::vector<std::string_view>& words) {
  words.clear();
  split_words(SplitPattern::gpt2, text, words);
  for (const std::string_view word : words) {
    const auto it = counts.find(word);
    if (it != counts.end()) {
      ++it->second;
    } else {
      counts.emplace(word, 1);
    }
  }
}

WordCounts count_corpus(const std::vector<std::string>& files, const BpeTrainerOptions& options) {
  WordCounts counts;
  std::vector<std::string_view> words;
  int64_t total_bytes = 0;
  for (const std::string& path : files) {
    std::ifstream in(path, std::ios::binary);
    MOE_CHECK(in, "cannot open training file '", path, "': ", std::strerror(errno));
    std::string buffer;
    while (in) {
      const size_t kept = buffer.size();
      buffer.resize(kept + kBlockBytes);
      in.read(buffer.data() + kept, kBlockBytes);
      buffer.resize(kept + in.gcount());
      total_bytes += in.gcount();
      const size_t cut = in ? last_safe_cut(buffer) : buffer.size();
      count_words(std::string_view(buffer).substr(0, cut), counts, words);
      buffer.erase(0, cut);
    }
    MOE_CHECK(in.eof(), "cannot read training file '", path, "': ", std::strerror(errno));
    if (options.progress)
      options.progress("read " + path + ": " + std::to_string(total_bytes >> 20) + " MB so far, " +
                       std::to_string(counts.size()) + " distinct words");
  }
  return counts;
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
}

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

// The merge loop over distinct words.
class Merger {
 public:
  Merger(const WordCounts& counts, std::vector<std::string>& tokens) : tokens_(tokens) {
    for (size_t id = 0; id < tokens_.size(); ++id) token_id_.emplace(tokens_[id], id);
    words_.reserve(counts.size());
    for (const auto& [text, count] : counts) {
      Word word{{}, count};
      for (const char byte : text) word.symbols.push_back(static_cast<unsigned char>(byte));
      words_.push_back(std::move(word));
    }
    // The order of the words (a hash map's) does not matter: counts are sums, and the heap
    // orders pairs by count, then by ids.
    for (size_t w = 0; w < words_.size(); ++w) {
      add_pairs(static_cast<int32_t>(w), +1);
      list_pairs(static_cast<int32_t>(w), std::nullopt);
    }
    for (const auto& [key, change] : delta_) commit(key, change);
    delta_.clear();
  }

  // Merges the most frequent pair; false when no pair is left.
  bool merge_next(BpeMerge& merge, int64_t& count) {
    while (!heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), heap_order);
      const auto [stale_count, key] = heap_.back();
      heap_.pop_back();
      const int64_t current = pair_count_[key];
      if (current != stale_count) {  // counts fell since this entry was pushed: requeue
        if (current > 0) push(current, key);
        continue;
      }
      count = current;
      merge = apply(static_cast<int32_t>(key >> 32), static_cast<int32_t>(key & 0xFFFFFFFF));
      return true;
    }
    return false;
  }

 private:
  using Entry = std::pair<int64_t, uint64_t>;  // count, pair
  // Max-heap on count; on equal counts the smaller pair comes first.
  static bool heap_order(const Entry& a, const Entry& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  }
  void push(int64_t count, uint64_t key) {
    heap_.emplace_back(count, key);
    std::push_heap(heap_.begin(), heap_.end(), heap_order);
  }
  void commit(uint64_t key, int64_t change) {
    if (change == 0) return;
    pair_count_[key] += change;
    if (change > 0) push(pair_count_[key], key);
  }
  void add_pairs(int32_t w, int sign) {
    const Word& word = words_[w];
    for (size_t i = 0; i + 1 < word.symbols.size(); ++i)
      delta_[pair_key(word.symbols[i], word.symbols[i + 1])] += sign * word.count;
  }
  // Lists word w under its pairs, or only under those that hold `with`.
  void list_pairs(int32_t w, std::optional<int32_t> with) {
    const std::vector<int32_t>& s = words_[w].symbols;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      if (!with || s[i] == *with || s[i + 1] == *with)
        pair_words_[pair_key(s[i], s[i + 1])].push_back(w);
    }
  }

  BpeMerge apply(int32_t left, int32_t right) {
    const std::string text = tokens_[left] + tokens_[right];
    const auto [it, is_new] = token_id_.emplace(text, static_cast<int32_t>(tokens_.size()));
    if (is_new) tokens_.push_back(text);
    const int32_t result = it->second;

    std::vector<int32_t> holders = std::move(pair_words_[pair_key(left, right)]);
    pair_words_.erase(pair_key(left, right));
    std::sort(holders.begin(), holders.end());
    holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
    for (const int32_t w : holders) {
      std::vector<int32_t>& symbols = words_[w].symbols;
      bool holds = false;
      for (size_t i = 0; i + 1 < symbols.size() && !holds; ++i)
        holds = symbols[i] == left && symbols[i + 1] == right;
      if (!holds) continue;  // an older entry: the pair left this word in an earlier merge
      add_pairs(w, -1);
      size_t out = 0;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          symbols[out++] = result;
          ++i;
        } else {
          symbols[out++] = symbols[i];
        }
      }
      symbols.resize(out);
      add_pairs(w, +1);
      list_pairs(w, result);
    }
    for (const auto& [key, change] : delta_) commit(key, change);
    delta_.clear();
    return {left, right, result};
  }

  std::vector<std::string>& tokens_;  // by id, as bytes
  std::unordered_map<std::string, int32_t> token_id_;
  std::vector<Word> words_;
  std::unordered_map<uint64_t, int64_t> pair_count_;
  // Words that hold each pair; may list a word twice, or one that no longer holds it.
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words_;
  std::unordered_map<uint64_t, int64_t> delta_;  // pending count changes
  std::vector<Entry> heap_;
};

}  // namespace

BpeDefinition train_bpe(const std::vector<std::string>& files, const BpeTrainerOptions& options) {
  MOE_CHECK(options.vocab_size >= 257, "BPE vocabulary size ", options.vocab_size,
            " is too small: it needs at least 257 (the 256 bytes and EOD)");
  MOE_CHECK(!files.empty(), "no training files for the BPE tokenizer");
  const WordCounts counts = count_corpus(files, options);

  std::vector<std::string> tokens;
  for (int byte = 0; byte < 256; ++byte) tokens.emplace_back(1, static_cast<char>(byte));
  BpeDefinition d;
  Merger merger(counts, tokens);
  const size_t target = options.vocab_size - 1;  // EOD is the last token
  const size_t report_every = std::max<size_t>(1, (target - 256) / 10);
  BpeMerge merge;
  int64_t count = 0;
  while (tokens.size() < target && merger.merge_next(merge, count)) {
    d.merges.push_back(merge);
    if (options.progress && (d.merges.size() % report_every == 0 || tokens.size() == target))
      options.progress("merge " + std::to_string(d.merges.size()) + ": vocabulary " +
                       std::to_string(tokens.size() + 1) + "/" +
                       std::to_string(options.vocab_size) + " with EOD, pair count " +
                       std::to_string(count));
  }
  if (options.progress && tokens.size() < target)
    options.progress("no pair left to merge: vocabulary " + std::to_string(tokens.size() + 1) +
                     " instead of " + std::to_string(options.vocab_size));

  for (const std::string& token : tokens) d.vocab.push_back(to_byte_level(token));
  const int32_t eod = static_cast<int32_t>(tokens.size());
  d.vocab.push_back(kEod);
  d.added_tokens.push_back({.id = eod, .content = kEod, .special = true});
  d.splits = {SplitPattern::gpt2};
  d.source = "trained on " + std::to_string(files.size()) + " file(s)";
  return d;
}

std::string to_tokenizer_json(const BpeDefinition& d) {
  MOE_ASSERT(d.splits == std::vector<SplitPattern>{SplitPattern::gpt2} && !d.add_prefix_space);
  std::string out = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": [";
  for (size_t i = 0; i < d.added_tokens.size(); ++i) {
    const BpeAddedToken& t = d.added_tokens[i];
    out += i ? ",\n    " : "\n    ";
    out += "{\"id\": " + std::to_string(t.id) + ", \"content\": ";
    append_json_string(out, t.content);
    const auto flag = [](bool value) { return value ? "true" : "false"; };
    out += std::string(", \"single_word\": false, \"lstrip\": ") + flag(t.lstrip) +
           ", \"rstrip\": " + flag(t.rstrip) + ", \"normalized\": " + flag(t.normalized) +
           ", \"special\": " + flag(t.special) + "}";
  }
  out += "\n  ],\n  \"normalizer\": null,\n";
  const std::string byte_level =
      "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
      "\"use_regex\": true}";
  out += "  \"pre_tokenizer\": " + byte_level + ",\n  \"post_processor\": null,\n";
  out += "  \"decoder\": " + byte_level + ",\n";
  out +=
      "  \"model\": {\n    \"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
      "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false, "
      "\"byte_fallback\": false, \"ignore_merges\": ";
  out += d.ignore_merges ? "true" : "false";
  out += ",\n    \"vocab\": {";
  for (size_t id = 0; id < d.vocab.size(); ++id) {
    MOE_ASSERT(d.vocab[id].has_value());
    out += id ? ",\n      " : "\n      ";
    append_json_string(out, *d.vocab[id]);
    out += ": " + std::to_string(id);
  }
  out += "\n    },\n    \"merges\": [";
  for (size_t i = 0; i < d.merges.size(); ++i) {
    out += i ? ",\n      " : "\n      ";
    append_json_string(out, *d.vocab[d.merges[i].left] + " " + *d.vocab[d.merges[i].right]);
  }
  out += "\n    ]\n  }\n}\n";
  return out;
}

}  // namespace moe
