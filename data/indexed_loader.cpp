#include "data/indexed_loader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"

namespace moe {
namespace {

std::string dataset_name(const std::string& prefix) {
  return std::filesystem::path(prefix).filename().string();
}

std::vector<std::string> split_list(const std::string& spec) {
  std::vector<std::string> items;
  std::stringstream in(spec);
  for (std::string item; std::getline(in, item, ',');) {
    std::stringstream words(item);
    std::string word;
    if (words >> word) items.push_back(word);
  }
  return items;
}

}  // namespace

IndexedLoader::IndexedLoader(const DataConfig& data, int dp_rank, int dp_size, LoaderUse use)
    : seq_len_(data.seq_len),
      dp_rank_(dp_rank),
      dp_size_(dp_size),
      tokenizer_(make_tokenizer(data.tokenizer)) {
  const bool training = use == LoaderUse::training;
  MOE_CHECK(!training || !data.train.empty(),
            "data.train is empty: name at least one dataset prefix (see "
            "docs/data.md; moe-data prepare makes them)");
  MOE_ASSERT(dp_rank >= 0 && dp_rank < dp_size, "data-parallel rank ", dp_rank, " of ", dp_size);
  const std::vector<std::string> valid = split_list(data.valid);
  for (const std::string& prefix : valid) {
    auto dataset = std::make_shared<const IndexedDataset>(prefix);
    val_.emplace_back(dataset, 0, dataset->num_sequences(), seq_len_, false, 0, 0);
    val_names_.push_back(dataset_name(prefix));
  }
  // With data.valid set nothing is held out of the training sets, so evaluation needs none.
  if (!training && (!valid.empty() || data.train.empty())) return;
  const std::vector<BlendEntry> blend = parse_blend(data.train, "data.train");
  const auto seed = static_cast<uint64_t>(data.seed);
  std::vector<double> weights;
  for (size_t d = 0; d < blend.size(); ++d) {
    auto dataset = std::make_shared<const IndexedDataset>(blend[d].prefix);
    const int64_t documents = dataset->num_sequences();
    const auto held_out =
        valid.empty() ? static_cast<int64_t>(std::ceil(data.val_fraction * documents)) : int64_t{0};
    MOE_CHECK(held_out < documents, blend[d].prefix, ": data.val_fraction = ", data.val_fraction,
              " of its ", documents, " documents leaves none for training");
    train_.emplace_back(dataset, 0, documents - held_out, seq_len_, true, seed,
                        stream_id("data.train." + std::to_string(d)));
    weights.push_back(blend[d].weight);
    if (held_out > 0) {
      val_.emplace_back(dataset, documents - held_out, held_out, seq_len_, false, 0, 0);
      val_names_.push_back(dataset_name(blend[d].prefix));
    }
  }
  blend_ = std::make_unique<BlendIndex>(weights);
}

TokenBatch IndexedLoader::make_batch(int64_t batch,
                                     const std::function<void(int64_t, int32_t*)>& fill) const {
  MOE_CHECK(batch >= 1, "a batch needs at least one sample, got ", batch);
  TokenBatch out{std::vector<int32_t>(batch * seq_len_), std::vector<int32_t>(batch * seq_len_),
                 batch, seq_len_};
  std::vector<int32_t> sample(static_cast<size_t>(seq_len_ + 1));
  for (int64_t b = 0; b < batch; ++b) {
    fill(b, sample.data());
    std::copy_n(sample.begin(), seq_len_, out.inputs.begin() + b * seq_len_);
    std::copy_n(sample.begin() + 1, seq_len_, out.targets.begin() + b * seq_len_);
  }
  return out;
}

const BlendIndex& IndexedLoader::blend() const {
  MOE_ASSERT(blend_, "a loader opened for evaluation has no training blend");
  return *blend_;
}

std::vector<int32_t> IndexedLoader::train_sample(int64_t g) const {
  const auto [dataset, index] = blend().locate(g);
  std::vector<int32_t> tokens(static_cast<size_t>(seq_len_ + 1));
  train_[dataset].sample(index, tokens.data());
  const int vocab = tokenizer_->vocab_size();
  for (size_t t = 0; t < tokens.size(); ++t)
    MOE_CHECK(tokens[t] >= 0 && tokens[t] < vocab, "token id ", tokens[t], " in sample ", index,
              " of training dataset ", dataset, " is outside the tokenizer's vocabulary [0, ",
              vocab, ") (data.tokenizer = ", tokenizer_->name(), ")");
  return tokens;
}

TokenBatch IndexedLoader::next_train_batch(int64_t batch) {
  const int64_t first = position_ + dp_rank_ * batch;
  TokenBatch out = make_batch(batch, [&](int64_t b, int32_t* sample) {
    const std::vector<int32_t> tokens = train_sample(first + b);
    std::copy(tokens.begin(), tokens.end(), sample);
  });
  position_ += batch * dp_size_;
  return out;
}

void IndexedLoader::set_train_position(int64_t samples) {
  MOE_CHECK(samples >= 0, "a loader position counts samples, got ", samples);
  position_ = samples;
}

int64_t IndexedLoader::num_val_batches(int set, int64_t batch) const {
  return val_.at(set).samples_per_epoch() / batch;
}

TokenBatch IndexedLoader::val_batch(int set, int64_t index, int64_t batch) const {
  MOE_CHECK(index >= 0 && index < num_val_batches(set, batch), "validation set ",
            val_names_.at(set), " has ", num_val_batches(set, batch), " batches of ", batch,
            ", asked for batch ", index);
  return make_batch(
      batch, [&](int64_t b, int32_t* sample) { val_[set].sample(index * batch + b, sample); });
}

}  // namespace moe
