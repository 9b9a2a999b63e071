#include "data/byte_text_dataset.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/rng.h"

namespace moe {
namespace {

std::string read_file(const std::string& path) {
  MOE_CHECK(!path.empty(), "data.path is empty; set it to a text file");
  MOE_CHECK(!std::filesystem::is_directory(path), "data file '", path,
            "' (data.path) is a directory, expected a text file");
  std::ifstream in(path, std::ios::binary);
  MOE_CHECK(in, "cannot open data file '", path, "' (data.path): ", std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  MOE_CHECK(!in.bad(), "cannot read data file '", path, "' (data.path)");
  MOE_CHECK(!bytes.empty(), "data file '", path, "' (data.path) is empty");
  return bytes;
}

void check_batch(int64_t batch) {
  MOE_CHECK(batch >= 1, "batch size ", batch, " must be at least 1");
}

}  // namespace

ByteTextDataset::ByteTextDataset(const DataConfig& data)
    : path_(data.path), seq_len_(data.seq_len), seed_(static_cast<uint64_t>(data.seed)) {
  MOE_CHECK(data.tokenizer == "byte", "ByteTextDataset needs data.tokenizer = byte, got '",
            data.tokenizer, "'");
  MOE_CHECK(data.seq_len >= 1, "data.seq_len = ", data.seq_len, " must be at least 1");
  MOE_CHECK(data.val_fraction >= 0 && data.val_fraction < 1,
            "data.val_fraction = ", data.val_fraction, " must be in [0, 1)");
  bytes_ = read_file(path_);
  const int64_t size = static_cast<int64_t>(bytes_.size());
  const int64_t val =
      static_cast<int64_t>(std::floor(data.val_fraction * static_cast<double>(size)));
  train_bytes_ = size - val;
  const int64_t window = seq_len_ + 1;
  MOE_CHECK(train_bytes_ >= window, "data file '", path_, "' is too short: its training split has ",
            train_bytes_, " bytes (", size, " bytes, data.val_fraction = ", data.val_fraction,
            "), fewer than data.seq_len + 1 = ", window);
  MOE_CHECK(val == 0 || val >= window, "data file '", path_,
            "' is too short: its validation split has ", val, " bytes (", size,
            " bytes, data.val_fraction = ", data.val_fraction,
            "), fewer than data.seq_len + 1 = ", window);
}

int64_t ByteTextDataset::train_window_start(int64_t sequence) const {
  MOE_CHECK(sequence >= 0, "training sequence index ", sequence, " is negative");
  const auto r = philox4x32(seed_, stream_id("data.train"), static_cast<uint64_t>(sequence));
  const uint64_t bits = (static_cast<uint64_t>(r[1]) << 32) | r[0];
  const uint64_t starts =
      static_cast<uint64_t>(train_bytes_ - seq_len_);  // offsets whose window fits
  return static_cast<int64_t>(bits % starts);
}

void ByteTextDataset::append_window(TokenBatch& out, int64_t offset) const {
  const auto* window = reinterpret_cast<const unsigned char*>(bytes_.data()) + offset;
  out.inputs.insert(out.inputs.end(), window, window + seq_len_);
  out.targets.insert(out.targets.end(), window + 1, window + seq_len_ + 1);
}

TokenBatch ByteTextDataset::empty_batch(int64_t batch) const {
  TokenBatch out;
  out.batch = batch;
  out.seq_len = seq_len_;
  out.inputs.reserve(batch * seq_len_);
  out.targets.reserve(batch * seq_len_);
  return out;
}

TokenBatch ByteTextDataset::train_batch_at(int64_t first_sequence, int64_t batch) const {
  check_batch(batch);
  TokenBatch out = empty_batch(batch);
  for (int64_t b = 0; b < batch; ++b) append_window(out, train_window_start(first_sequence + b));
  return out;
}

TokenBatch ByteTextDataset::next_train_batch(int64_t batch) {
  TokenBatch out = train_batch_at(position_, batch);
  position_ += batch;
  return out;
}

void ByteTextDataset::set_train_position(int64_t sequences) {
  MOE_CHECK(sequences >= 0, "training data position ", sequences, " is negative");
  position_ = sequences;
}

int64_t ByteTextDataset::num_val_windows() const {
  return val_bytes() == 0 ? 0 : (val_bytes() - 1) / seq_len_;
}

int64_t ByteTextDataset::num_val_batches(int64_t batch) const {
  check_batch(batch);
  return num_val_windows() / batch;
}

TokenBatch ByteTextDataset::val_batch(int64_t index, int64_t batch) const {
  check_batch(batch);
  MOE_CHECK(index >= 0 && index < num_val_batches(batch), "validation batch index ", index,
            " is out of range: the validation split of '", path_, "' (", val_bytes(),
            " bytes) holds ", num_val_windows(), " windows of data.seq_len + 1 = ", seq_len_ + 1,
            " bytes, so ", num_val_batches(batch), " batches of ", batch, " sequences");
  TokenBatch out = empty_batch(batch);
  for (int64_t b = 0; b < batch; ++b) {
    append_window(out, train_bytes_ + (index * batch + b) * seq_len_);
  }
  return out;
}

std::string ByteTextDataset::decode(std::span<const int32_t> tokens) const {
  std::string text;
  text.reserve(tokens.size());
  for (const int32_t token : tokens) {
    if (token >= 0 && token < kVocabSize) {
      text += static_cast<char>(token);
    } else {
      text += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
    }
  }
  return text;
}

}  // namespace moe
