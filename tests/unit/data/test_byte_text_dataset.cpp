// Byte-level text dataset on a small real text: the train/validation split (disjoint, sized by
// val_fraction), training windows that lie inside the training bytes and match the file, targets
// shifted by one, determinism per seed and per position (resume), fixed validation windows that
// tile the tail, decode, and every input error naming the file and sizes.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/byte_text_dataset.h"
#include "data/token_loader.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::input_error_message;
using testing::mentions;

const char* const kGenesis =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep. And the "
    "Spirit of God moved upon the face of the waters.\n"
    "And God said, Let there be light: and there was light.\n"
    "And God saw the light, that it was good: and God divided the light from the darkness.\n"
    "And God called the light Day, and the darkness he called Night. And the evening and the "
    "morning were the first day.\n"
    "And God said, Let there be a firmament in the midst of the waters, and let it divide the "
    "waters from the waters.\n"
    "And God made the firmament, and divided the waters which were under the firmament from the "
    "waters which were above the firmament: and it was so.\n"
    "And God called the firmament Heaven. And the evening and the morning were the second day.\n"
    "And God said, Let the waters under the heaven be gathered together unto one place, and let "
    "the dry land appear: and it was so.\n"
    "And God called the dry land Earth; and the gathering together of the waters called he Seas: "
    "and God saw that it was good.\n";

class ByteText : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("moe_byte_text_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    text_ = kGenesis;
    path_ = write("genesis.txt", text_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& contents) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << contents;
    return path.string();
  }
  DataConfig config(int seq_len = 16, double val_fraction = 0.1, int64_t seed = 7) const {
    DataConfig d;
    d.path = path_;
    d.seq_len = seq_len;
    d.val_fraction = val_fraction;
    d.seed = seed;
    return d;
  }
  // Row b of a [batch, seq_len] vector as text.
  static std::string row(const std::vector<int32_t>& tokens, int64_t seq_len, int64_t b) {
    std::string out;
    for (int64_t t = 0; t < seq_len; ++t) out += static_cast<char>(tokens[b * seq_len + t]);
    return out;
  }

  fs::path dir_;
  std::string text_;
  std::string path_;
};

TEST_F(ByteText, SplitIsTheTailSizedByValFraction) {
  const int64_t size = static_cast<int64_t>(text_.size());
  const ByteTextDataset d(config(16, 0.1));
  EXPECT_EQ(d.val_bytes(), size / 10);  // floor(0.1 * size)
  EXPECT_EQ(d.train_bytes() + d.val_bytes(), size);
  EXPECT_EQ(d.vocab_size(), 256);
  EXPECT_EQ(d.seq_len(), 16);
  const ByteTextDataset no_val(config(16, 0.0));
  EXPECT_EQ(no_val.train_bytes(), size);
  EXPECT_EQ(no_val.num_val_windows(), 0);
  EXPECT_EQ(no_val.num_val_batches(1), 0);
}

TEST_F(ByteText, TrainWindowsMatchTheFileAndStayInTheTrainingSplit) {
  const int64_t L = 16;
  ByteTextDataset d(config(L, 0.1));
  const int64_t last_start = d.train_bytes() - (L + 1);
  const TokenBatch batch = d.next_train_batch(8000);
  ASSERT_EQ(batch.batch, 8000);
  ASSERT_EQ(batch.seq_len, L);
  ASSERT_EQ(batch.inputs.size(), static_cast<size_t>(8000 * L));
  ASSERT_EQ(batch.targets.size(), batch.inputs.size());
  std::set<int64_t> starts;
  for (int64_t b = 0; b < batch.batch; ++b) {
    const int64_t start = d.train_window_start(b);
    ASSERT_GE(start, 0);
    ASSERT_LE(start, last_start) << "window " << b << " reaches into the validation bytes";
    EXPECT_EQ(row(batch.inputs, L, b), text_.substr(start, L));
    EXPECT_EQ(row(batch.targets, L, b), text_.substr(start + 1, L));
    starts.insert(start);
  }
  // Uniform over the offsets: 8000 draws over ~1000 offsets reach both ends and nearly all between.
  EXPECT_EQ(*starts.begin(), 0);
  EXPECT_EQ(*starts.rbegin(), last_start);
  EXPECT_GT(static_cast<double>(starts.size()), 0.99 * static_cast<double>(last_start + 1));
}

TEST_F(ByteText, TargetsAreInputsShiftedByOne) {
  ByteTextDataset d(config(32, 0.2));
  for (const TokenBatch& batch : {d.next_train_batch(8), d.val_batch(0, 2)}) {
    for (int64_t b = 0; b < batch.batch; ++b) {
      for (int64_t t = 0; t + 1 < batch.seq_len; ++t) {
        ASSERT_EQ(batch.targets[b * batch.seq_len + t], batch.inputs[b * batch.seq_len + t + 1]);
      }
    }
    for (const int32_t token : batch.inputs) ASSERT_TRUE(token >= 0 && token < 256);
  }
}

TEST_F(ByteText, SameSeedSameBatchesOtherSeedOtherBatches) {
  ByteTextDataset a(config(16, 0.1, 7)), b(config(16, 0.1, 7)), c(config(16, 0.1, 8));
  for (int step = 0; step < 5; ++step) {
    const TokenBatch from_a = a.next_train_batch(4);
    const TokenBatch from_b = b.next_train_batch(4);
    const TokenBatch from_c = c.next_train_batch(4);
    EXPECT_EQ(from_a.inputs, from_b.inputs);
    EXPECT_EQ(from_a.targets, from_b.targets);
    EXPECT_NE(from_a.inputs, from_c.inputs);
  }
  EXPECT_EQ(a.train_position(), 20);
}

TEST_F(ByteText, TrainStreamIsAFunctionOfThePositionOnly) {
  ByteTextDataset straight(config());
  std::vector<TokenBatch> batches;
  for (int step = 0; step < 4; ++step) batches.push_back(straight.next_train_batch(4));

  ByteTextDataset resumed(config());
  resumed.set_train_position(8);  // after two batches of 4
  EXPECT_EQ(resumed.next_train_batch(4).inputs, batches[2].inputs);
  EXPECT_EQ(resumed.train_position(), 12);

  ByteTextDataset smaller(config());  // two batches of 2 are one batch of 4
  std::vector<int32_t> joined = smaller.next_train_batch(2).inputs;
  const std::vector<int32_t> second = smaller.next_train_batch(2).inputs;
  joined.insert(joined.end(), second.begin(), second.end());
  EXPECT_EQ(joined, batches[0].inputs);
  EXPECT_EQ(straight.train_batch_at(4, 4).inputs, batches[1].inputs);
  EXPECT_EQ(straight.train_position(), 16);  // train_batch_at does not move it
}

TEST_F(ByteText, ValidationWindowsAreFixedAndTileTheTail) {
  const int64_t L = 16;
  const ByteTextDataset d(config(L, 0.25, 7));
  const ByteTextDataset other_seed(config(L, 0.25, 99));
  const int64_t val = d.val_bytes();
  const int64_t windows = d.num_val_windows();
  EXPECT_EQ(windows, (val - 1) / L);
  ASSERT_GE(windows, 4);
  EXPECT_EQ(d.num_val_batches(2), windows / 2);
  EXPECT_EQ(d.num_val_batches(windows), 1);
  EXPECT_EQ(d.num_val_batches(windows + 1), 0);

  std::string targets;  // every window's targets in order: the tail minus its first byte
  for (int64_t k = 0; k < d.num_val_batches(2); ++k) {
    const TokenBatch batch = d.val_batch(k, 2);
    EXPECT_EQ(batch.inputs, d.val_batch(k, 2).inputs);  // the same on every call
    EXPECT_EQ(batch.inputs, other_seed.val_batch(k, 2).inputs);
    for (int64_t b = 0; b < 2; ++b) {
      const int64_t start = d.train_bytes() + (2 * k + b) * L;
      EXPECT_EQ(row(batch.inputs, L, b), text_.substr(start, L));
      targets += row(batch.targets, L, b);
    }
  }
  EXPECT_EQ(targets, text_.substr(d.train_bytes() + 1, targets.size()));
  EXPECT_LE(d.train_bytes() + 1 + static_cast<int64_t>(targets.size()), d.train_bytes() + val);
  // The first validation input byte is the first byte after the training split: no overlap.
  EXPECT_EQ(d.val_batch(0, 1).inputs[0], static_cast<unsigned char>(text_[d.train_bytes()]));
}

TEST_F(ByteText, ValidationBatchOutOfRange) {
  const ByteTextDataset d(config(16, 0.25));
  const int64_t batches = d.num_val_batches(2);
  const std::string message = input_error_message([&] { d.val_batch(batches, 2); });
  EXPECT_TRUE(mentions(message, "validation batch index " + std::to_string(batches) +
                                    " is out of range: the validation split of '" + path_ + "'"));
  EXPECT_TRUE(mentions(message, "so " + std::to_string(batches) + " batches of 2 sequences"));
  EXPECT_TRUE(mentions(input_error_message([&] { d.val_batch(-1, 2); }), "index -1"));
  const ByteTextDataset no_val(config(16, 0.0));
  EXPECT_TRUE(mentions(input_error_message([&] { no_val.val_batch(0, 1); }), "holds 0 windows"));
}

TEST_F(ByteText, DecodeIsTheInverseOfTheBytes) {
  ByteTextDataset d(config(24, 0.1));
  const TokenBatch batch = d.next_train_batch(1);
  EXPECT_EQ(d.decode(batch.inputs), text_.substr(d.train_window_start(0), 24));
  std::vector<int32_t> all;
  for (const char ch : std::string("caf\xc3\xa9\n\t\x01\xff")) {
    all.push_back(static_cast<unsigned char>(ch));
  }
  EXPECT_EQ(d.decode(all), "caf\xc3\xa9\n\t\x01\xff");
  EXPECT_EQ(d.decode(std::vector<int32_t>{'a', 256, -1, 'b'}),
            "a\xEF\xBF\xBD\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(d.decode({}), "");
}

TEST_F(ByteText, FactoryMakesTheByteLoader) {
  const std::unique_ptr<TokenLoader> loader = make_token_loader(config());
  EXPECT_EQ(loader->vocab_size(), 256);
  EXPECT_EQ(loader->next_train_batch(2).inputs,
            ByteTextDataset(config()).next_train_batch(2).inputs);
  DataConfig other = config();
  other.tokenizer = "bpe";
  EXPECT_TRUE(mentions(input_error_message([&] { make_token_loader(other); }),
                       "unknown data.tokenizer 'bpe'; expected: byte"));
}

TEST_F(ByteText, FileErrorsNameThePath) {
  DataConfig d = config();
  d.path = (dir_ / "missing.txt").string();
  std::string message = input_error_message([&] { ByteTextDataset x(d); });
  EXPECT_TRUE(mentions(message, "cannot open data file '" + d.path + "' (data.path): "));
  EXPECT_TRUE(mentions(message, "No such file or directory"));

  d.path = write("empty.txt", "");
  EXPECT_TRUE(mentions(input_error_message([&] { ByteTextDataset x(d); }),
                       "data file '" + d.path + "' (data.path) is empty"));

  d.path = dir_.string();
  EXPECT_TRUE(mentions(input_error_message([&] { ByteTextDataset x(d); }),
                       "data file '" + d.path + "' (data.path) is a directory"));

  d.path = "";
  EXPECT_TRUE(mentions(input_error_message([&] { ByteTextDataset x(d); }), "data.path is empty"));
}

TEST_F(ByteText, TooShortForEitherSplit) {
  DataConfig d = config(16, 0.0);
  d.path = write("short.txt", "sixteen bytes!!\n");  // 16 bytes: no window of 17
  EXPECT_TRUE(mentions(input_error_message([&] { ByteTextDataset x(d); }),
                       "data file '" + d.path +
                           "' is too short: its training split has 16 bytes (16 bytes, "
                           "data.val_fraction = 0), fewer than data.seq_len + 1 = 17"));
  d.path = write("exact.txt", "seventeen bytes!\n");  // exactly one window: fine
  EXPECT_EQ(ByteTextDataset(d).next_train_batch(3).inputs.size(), 3u * 16);

  d.path = write("forty.txt", std::string(40, 'x'));
  d.val_fraction = 0.25;  // 10 validation bytes < 17
  EXPECT_TRUE(mentions(input_error_message([&] { ByteTextDataset x(d); }),
                       "data file '" + d.path +
                           "' is too short: its validation split has 10 bytes (40 bytes, "
                           "data.val_fraction = 0.25), fewer than data.seq_len + 1 = 17"));
  d.val_fraction = 0.5;  // 20 + 20: one window each
  const ByteTextDataset fits(d);
  EXPECT_EQ(fits.num_val_windows(), 1);
}

TEST_F(ByteText, BadArguments) {
  ByteTextDataset d(config());
  EXPECT_TRUE(mentions(input_error_message([&] { d.next_train_batch(0); }),
                       "batch size 0 must be at least 1"));
  EXPECT_TRUE(mentions(input_error_message([&] { d.set_train_position(-3); }),
                       "training data position -3 is negative"));
  DataConfig other = config();
  other.tokenizer = "bpe";
  EXPECT_TRUE(mentions(input_error_message([&] { ByteTextDataset x(other); }),
                       "needs data.tokenizer = byte, got 'bpe'"));
}

}  // namespace
}  // namespace moe
