#include "data/bpe_tokenizer.h"

#include <algorithm>
#include <atomic>
#include <bit>

#include "core/error.h"
#include "data/bpe_byte_level.h"
#include "data/unicode_nfc.h"
#include "formats/unicode.h"

namespace moe {
namespace {

constexpr std::string_view kEodNames[] = {"<|endoftext|>", "<|end_of_text|>", "</s>"};
constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

bool is_space(std::string_view text, size_t pos, int* size) {
  const unicode::Utf8Char ch = unicode::decode_utf8(text, pos);
  *size = ch.size;
  return unicode::char_class(ch.code) == unicode::CharClass::space;
}

// Where the run of white space that ends text starts (text.size() when there is none).
size_t trailing_space_start(std::string_view text) {
  size_t start = 0;
  for (size_t pos = 0; pos < text.size();) {
    int size;
    if (!is_space(text, pos, &size)) start = pos + size;
    pos += size;
  }
  return start;
}

// The length of the run of white space that starts text.
size_t leading_space_end(std::string_view text) {
  size_t pos = 0;
  int size;
  while (pos < text.size() && is_space(text, pos, &size)) pos += size;
  return pos;
}

// The words this thread merged last, for one tokenizer (see bpe_tokenizer.h). Keyed by the
// tokenizer's serial number, never its address, which a later tokenizer may reuse.
struct WordCache {
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<int32_t>, BpeStringHash, std::equal_to<>> words;
};
constexpr size_t kCachedWords = size_t{1} << 16;
constexpr size_t kCachedWordBytes = 64;

WordCache& word_cache(uint64_t owner) {
  thread_local WordCache cache;
  if (cache.owner != owner || cache.words.size() >= kCachedWords) {
    cache.words.clear();
    cache.owner = owner;
  }
  return cache;
}

std::atomic<uint64_t> next_serial{1};

}  // namespace

// Merge lookup, the hot path of encoding: (left id, right id) -> (rank, result id) in an
// open-addressing table with linear probing, a few times faster than std::unordered_map here.
struct BpeTokenizer::PairTable {
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = 0, result = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are below 2^31, so no pair is this

  explicit PairTable(const std::vector<BpeMerge>& merges) {
    const size_t capacity = std::bit_ceil(std::max<size_t>(16, 2 * merges.size()));
    shift_ = 64 - std::countr_zero(capacity);
    slots_.resize(capacity);
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const BpeMerge& m = merges[rank];
      // A repeated pair takes the later rank, as in HF (a HashMap collected from the list).
      slots_[probe(key(m.left, m.right))] = {key(m.left, m.right), static_cast<int32_t>(rank),
                                             m.result};
    }
  }
  const Slot* find(int32_t left, int32_t right) const {
    const Slot& slot = slots_[probe(key(left, right))];
    return slot.key == kEmpty ? nullptr : &slot;
  }

 private:
  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
  }
  // The slot holding k, or the empty slot where it would go.
  size_t probe(uint64_t k) const {
    size_t i = (k * 0x9E3779B97F4A7C15ull) >> shift_;
    while (slots_[i].key != k && slots_[i].key != kEmpty) i = (i + 1) & (slots_.size() - 1);
    return i;
  }
  std::vector<Slot> slots_;
  int shift_ = 0;
};

// Cuts added tokens out of text as HF's AddedVocabulary::find_matches does.
class BpeTokenizer::AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<BpeAddedToken> tokens) : tokens_(std::move(tokens)) {
    std::stable_sort(tokens_.begin(), tokens_.end(), [](const auto& a, const auto& b) {
      return a.content.size() > b.content.size();  // longest first: leftmost-longest
    });
    for (size_t i = 0; i < tokens_.size(); ++i)
      by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  }

  // Appends the ids of the added tokens in text and calls encode_span on the spans between them.
  template <typename EncodeSpan>
  void split(std::string_view text, std::vector<int32_t>& ids, EncodeSpan encode_span) const {
    if (tokens_.empty() || text.empty()) return encode_span(text);
    size_t done = 0;  // text before this is encoded
    for (size_t pos = 0; pos < text.size();) {
      const BpeAddedToken* token = match(text, pos);
      if (!token) {
        ++pos;
        continue;
      }
      size_t start = pos, stop = pos + token->content.size();
      pos = stop;
      if (token->lstrip) start = done + trailing_space_start(text.substr(done, start - done));
      if (token->rstrip) stop += leading_space_end(text.substr(stop));
      if (done < start) encode_span(text.substr(done, start - done));
      ids.push_back(token->id);
      done = stop;
    }
    if (done < text.size()) encode_span(text.substr(done));
  }

 private:
  const BpeAddedToken* match(std::string_view text, size_t pos) const {
    for (const size_t i : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      if (text.substr(pos).starts_with(tokens_[i].content)) return &tokens_[i];
    }
    return nullptr;
  }

  std::vector<BpeAddedToken> tokens_;
  std::array<std::vector<size_t>, 256> by_first_byte_;
};

BpeTokenizer::BpeTokenizer(const BpeDefinition& definition)
    : serial_(next_serial++),
      source_(definition.source),
      merges_(std::make_unique<PairTable>(definition.merges)),
      nfc_(definition.nfc),
      ignore_merges_(definition.ignore_merges),
      add_prefix_space_(definition.add_prefix_space),
      splits_(definition.splits) {
  std::unordered_map<std::string, int32_t> model_token;  // byte-level spelling -> id
  token_text_.resize(definition.vocab.size());
  for (size_t id = 0; id < definition.vocab.size(); ++id) {
    if (!definition.vocab[id]) continue;
    const std::string& spelling = *definition.vocab[id];
    model_token.emplace(spelling, static_cast<int32_t>(id));
    const std::optional<std::string> bytes = from_byte_level(spelling);
    token_text_[id] = bytes.value_or(spelling);  // HF's ByteLevel decoder keeps such tokens as is
    if (bytes && ignore_merges_) word_token_.emplace(*bytes, static_cast<int32_t>(id));
  }
  for (int byte = 0; byte < 256; ++byte) {
    const std::string spelling = to_byte_level(std::string(1, static_cast<char>(byte)));
    const auto it = model_token.find(spelling);
    MOE_CHECK(it != model_token.end(), "BPE vocabulary of '", source_, "' has no token for byte ",
              byte, " ('", spelling, "'): byte-level BPE needs all 256 bytes");
    byte_token_[byte] = it->second;
  }

  std::vector<BpeAddedToken> raw, normalized;
  for (const BpeAddedToken& token : definition.added_tokens) {
    MOE_CHECK(!token.content.empty() && token.id >= 0, "added token ", token.id, " '",
              token.content, "' of '", source_, "' is empty or has a negative id");
    const auto it = model_token.find(token.content);
    MOE_CHECK(it == model_token.end() || it->second == token.id, "added token '", token.content,
              "' of '", source_, "' has id ", token.id, " but id ", it->second,
              " in the model's vocabulary");
    if (static_cast<size_t>(token.id) >= token_text_.size()) token_text_.resize(token.id + 1);
    MOE_CHECK(!token_text_[token.id] || it != model_token.end(), "added token '", token.content,
              "' of '", source_, "' has id ", token.id, ", which is already '",
              token_text_[token.id].value_or(""), "'");
    token_text_[token.id] = token.content;
    (token.normalized ? normalized : raw).push_back(token);
    if (token.normalized && nfc_) normalized.back().content = unicode::to_nfc(token.content);
  }
  for (const std::string_view name : kEodNames) {
    for (const BpeAddedToken& token : definition.added_tokens) {
      if (eod_id_ < 0 && token.special && token.content == name) eod_id_ = token.id;
    }
  }
  if (eod_id_ < 0) {
    eod_id_ = static_cast<int32_t>(token_text_.size());
    token_text_.emplace_back(kEodNames[0]);
  }
  raw_added_ = std::make_unique<AddedTokenMatcher>(std::move(raw));
  normalized_added_ = std::make_unique<AddedTokenMatcher>(std::move(normalized));
}

BpeTokenizer::~BpeTokenizer() = default;

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  const auto encode_normalized = [&](std::string_view span) {
    normalized_added_->split(span, ids, [&](std::string_view rest) { encode_span(rest, ids); });
  };
  raw_added_->split(text, ids, [&](std::string_view span) {
    if (nfc_) {
      encode_normalized(unicode::to_nfc(span));
    } else {
      encode_normalized(span);
    }
  });
  return ids;
}

void BpeTokenizer::encode_span(std::string_view text, std::vector<int32_t>& ids) const {
  std::string prefixed;
  if (add_prefix_space_ && !text.empty() && !text.starts_with(' ')) {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  std::vector<std::string_view> words{text}, next;
  for (const SplitPattern pattern : splits_) {
    next.clear();
    for (const std::string_view word : words) split_words(pattern, word, next);
    words.swap(next);
  }
  for (const std::string_view word : words) encode_word(word, ids);
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (word.size() == 1) {
    ids.push_back(byte_token_[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (ignore_merges_) {
    const auto it = word_token_.find(word);
    if (it != word_token_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  if (word.size() > kCachedWordBytes) return merge_word(word, ids);
  WordCache& cache = word_cache(serial_);
  if (const auto it = cache.words.find(word); it != cache.words.end()) {
    ids.insert(ids.end(), it->second.begin(), it->second.end());
    return;
  }
  const size_t start = ids.size();
  merge_word(word, ids);
  cache.words.emplace(word, std::vector<int32_t>(ids.begin() + start, ids.end()));
}

// HF's BPE::merge_word and Word::merge_all: a queue of candidate merges ordered by rank, then
// position; a candidate is skipped once its symbols are gone or no longer merge into its result.
void BpeTokenizer::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  struct Symbol {
    int32_t id, prev, next;  // prev/next: neighbouring live symbols, -1 at the ends
    bool live;
  };
  struct Candidate {
    int32_t rank, pos, result;
    bool operator<(const Candidate& o) const {  // std heaps are max-heaps: invert
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  const int32_t n = static_cast<int32_t>(word.size());
  std::vector<Symbol> symbols(n);
  std::vector<Candidate> queue;
  const auto push_candidate = [&](int32_t pos) {
    const PairTable::Slot* slot = merges_->find(symbols[pos].id, symbols[symbols[pos].next].id);
    if (!slot) return;
    queue.push_back({slot->rank, pos, slot->result});
    std::push_heap(queue.begin(), queue.end());
  };
  for (int32_t i = 0; i < n; ++i)
    symbols[i] = {byte_token_[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1,
                  true};
  for (int32_t i = 0; i + 1 < n; ++i) push_candidate(i);
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end());
    const Candidate top = queue.back();
    queue.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.live || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const PairTable::Slot* slot = merges_->find(left.id, right.id);
    if (!slot || slot->result != top.result) continue;
    left.id = top.result;
    left.next = right.next;
    right.live = false;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) push_candidate(left.prev);
    if (left.next >= 0) push_candidate(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

std::string BpeTokenizer::decode(std::span<const int32_t> tokens) const {
  std::string text;
  for (const int32_t id : tokens) {
    if (id >= 0 && static_cast<size_t>(id) < token_text_.size() && token_text_[id]) {
      text += *token_text_[id];
    } else {
      text += kReplacementChar;
    }
  }
  return text;
}

}  // namespace moe
