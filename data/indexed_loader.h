// TokenLoader over indexed datasets: the training blend of data.train and one validation set per
// entry of data.valid, or, when data.valid is empty, the last data.val_fraction of the documents of
// every training dataset (named after the dataset). Opened for evaluation with data.valid set, it
// has no training blend and opens no training dataset (next_train_batch is an internal error).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/blend.h"
#include "data/packed_dataset.h"
#include "data/token_loader.h"

namespace moe {

class IndexedLoader final : public TokenLoader {
 public:
  IndexedLoader(const DataConfig& data, int dp_rank, int dp_size,
                LoaderUse use = LoaderUse::training);

  TokenBatch next_train_batch(int64_t batch) override;
  int64_t train_position() const override { return position_; }
  void set_train_position(int64_t samples) override;

  int num_val_sets() const override { return static_cast<int>(val_.size()); }
  const std::string& val_set_name(int set) const override { return val_names_.at(set); }
  TokenBatch val_batch(int set, int64_t index, int64_t batch) const override;
  int64_t num_val_batches(int set, int64_t batch) const override;

  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  int64_t seq_len() const override { return seq_len_; }

  // Global training sample g, seq_len + 1 tokens (what rank slices are cut from).
  std::vector<int32_t> train_sample(int64_t g) const;
  // The training dataset global sample g comes from.
  int train_dataset_of(int64_t g) const { return blend().locate(g).first; }

 private:
  TokenBatch make_batch(int64_t batch, const std::function<void(int64_t, int32_t*)>& fill) const;
  const BlendIndex& blend() const;

  int64_t seq_len_;
  int dp_rank_, dp_size_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<PackedDataset> train_;
  std::unique_ptr<BlendIndex> blend_;
  std::vector<PackedDataset> val_;
  std::vector<std::string> val_names_;
  int64_t position_ = 0;
};

}  // namespace moe
