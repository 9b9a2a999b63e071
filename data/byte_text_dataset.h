// A text file read as bytes: the simplest real data, enough to train and evaluate a small model on
// one machine (configs/quickstart.yaml trains on data/kjv.txt).
//
// Decisions:
// - Token = byte value, vocabulary 256, no special tokens: one text file has no document
//   boundaries to mark, and model.vocab_size = 256 stays the natural setting. decode() turns ids
//   outside 0..255 (a model with a larger vocabulary can sample them) into U+FFFD.
// - The split is by position: the last floor(val_fraction * size) bytes are validation, the rest
//   training, so the two never share a byte. Each split must hold at least one window of
//   seq_len + 1 bytes (validation only when val_fraction > 0); the whole file is kept in memory.
// - Training sequence i starts at a uniform offset in the training bytes drawn by
//   philox4x32(data.seed, stream_id("data.train"), i) (64 bits modulo the number of offsets; the
//   bias is below n / 2^64). Windows may overlap each other, never the validation bytes.
// - Validation windows are fixed and tile the tail with stride seq_len: window j covers bytes
//   [j * seq_len, j * seq_len + seq_len + 1) of it, so every validation byte after the first is a
//   target exactly once over all windows. Batch k holds windows [k * batch, (k + 1) * batch).
// Errors (InputError) name the file and the sizes involved.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/token_loader.h"

namespace moe {

class ByteTextDataset final : public TokenLoader {
 public:
  static constexpr int kVocabSize = 256;

  // Reads data.path; data.tokenizer must be "byte".
  explicit ByteTextDataset(const DataConfig& data);

  TokenBatch next_train_batch(int64_t batch) override;
  int64_t train_position() const override { return position_; }
  void set_train_position(int64_t sequences) override;

  TokenBatch val_batch(int64_t index, int64_t batch) const override;
  int64_t num_val_batches(int64_t batch) const override;

  int vocab_size() const override { return kVocabSize; }
  int64_t seq_len() const override { return seq_len_; }
  std::string decode(std::span<const int32_t> tokens) const override;

  // Training sequences [first_sequence, first_sequence + batch) of the stream; the position is
  // neither used nor changed.
  TokenBatch train_batch_at(int64_t first_sequence, int64_t batch) const;
  // Where training sequence `sequence` starts, as a byte offset into the file (< train_bytes()).
  int64_t train_window_start(int64_t sequence) const;

  int64_t train_bytes() const { return train_bytes_; }  // bytes [0, train_bytes) are training
  int64_t val_bytes() const { return static_cast<int64_t>(bytes_.size()) - train_bytes_; }
  int64_t num_val_windows() const;

 private:
  // A batch of the right sizes with room reserved for its windows.
  TokenBatch empty_batch(int64_t batch) const;
  // Appends the window of seq_len + 1 bytes starting at `offset` to `out`.
  void append_window(TokenBatch& out, int64_t offset) const;

  std::string path_;
  std::string bytes_;
  int64_t seq_len_ = 0;
  int64_t train_bytes_ = 0;
  uint64_t seed_ = 0;
  int64_t position_ = 0;
};

}  // namespace moe
