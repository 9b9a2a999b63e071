// The indexed-dataset loader on real text (the license texts every Debian system ships, one
// document per paragraph): packed samples reproduce the token stream, the global order is fixed by
// the seed, data-parallel slices add up to the single-rank batch, a resumed loader continues the
// same stream, blends follow their weights, validation sets are fixed and named, a loader opened
// for evaluation opens no training set it does not need, and bad data is a clear error.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "data/indexed_dataset.h"
#include "data/indexed_loader.h"
#include "tests/support/error_message.h"
#include "tests/support/text_dataset.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;

const std::string kDir = ::testing::TempDir() + "moe_indexed_loader/";

const std::string& gpl() {
  static const std::string prefix =
      testing::write_text_dataset("/usr/share/common-licenses/GPL-3", kDir + "gpl");
  return prefix;
}
const std::string& apache() {
  static const std::string prefix =
      testing::write_text_dataset("/usr/share/common-licenses/Apache-2.0", kDir + "apache");
  return prefix;
}

DataConfig config(const std::string& train, const std::string& valid = "") {
  DataConfig data;
  data.train = train;
  data.valid = valid;
  data.seq_len = 32;
  data.val_fraction = 0.1;
  data.seed = 5;
  return data;
}

// All tokens of sequences [first, first + count), in order.
std::vector<int32_t> stream_of(const IndexedDataset& d, int64_t first, int64_t count) {
  std::vector<int32_t> tokens;
  for (int64_t s = first; s < first + count; ++s) {
    std::vector<int32_t> part(static_cast<size_t>(d.sequence_length(s)));
    d.read(s, 0, d.sequence_length(s), part.data());
    tokens.insert(tokens.end(), part.begin(), part.end());
  }
  return tokens;
}

TEST(IndexedLoader, UnshuffledSamplesTileTheDocumentStream) {
  const IndexedLoader loader(config(gpl()), 0, 1);
  const IndexedDataset data(gpl());
  ASSERT_EQ(loader.num_val_sets(), 1);
  EXPECT_EQ(loader.val_set_name(0), "gpl");
  const int64_t documents = data.num_sequences();
  const auto held_out = static_cast<int64_t>(std::ceil(0.1 * documents));
  const std::vector<int32_t> stream = stream_of(data, documents - held_out, held_out);
  const int64_t batches = loader.num_val_batches(0, 2);
  ASSERT_GT(batches, 3);
  EXPECT_EQ(batches, static_cast<int64_t>((stream.size() - 1) / 32 / 2));
  for (int64_t k = 0; k < batches; ++k) {
    const TokenBatch b = loader.val_batch(0, k, 2);
    for (int64_t row = 0; row < 2; ++row)
      for (int64_t t = 0; t < 32; ++t) {
        const size_t at = static_cast<size_t>((k * 2 + row) * 32 + t);
        ASSERT_EQ(b.inputs[row * 32 + t], stream[at]) << "batch " << k << " row " << row;
        ASSERT_EQ(b.targets[row * 32 + t], stream[at + 1]) << "batch " << k << " row " << row;
      }
  }
}

TEST(IndexedLoader, TheSeedFixesTheOrderAndEpochsReshuffle) {
  const IndexedLoader a(config(gpl()), 0, 1), b(config(gpl()), 0, 1);
  DataConfig other = config(gpl());
  other.seed = 6;
  const IndexedLoader c(other, 0, 1);
  for (int64_t g = 0; g < 20; ++g) EXPECT_EQ(a.train_sample(g), b.train_sample(g)) << g;
  int differ = 0;
  for (int64_t g = 0; g < 20; ++g) differ += a.train_sample(g) != c.train_sample(g);
  EXPECT_GT(differ, 15);
  // The second epoch visits the data in another order.
  const IndexedDataset data(gpl());
  const int64_t documents = data.num_sequences();
  const int64_t train_tokens =
      static_cast<int64_t>(stream_of(data, 0, documents - std::ceil(0.1 * documents)).size());
  const int64_t per_epoch = (train_tokens - 1) / 32;
  differ = 0;
  for (int64_t g = 0; g < 20; ++g) differ += a.train_sample(g) != a.train_sample(per_epoch + g);
  EXPECT_GT(differ, 15);
}

TEST(IndexedLoader, DataParallelSlicesAddUpToTheSingleRankBatch) {
  const int64_t global_batch = 8;
  IndexedLoader single(config(gpl() + " 0.6, " + apache() + " 0.4"), 0, 1);
  for (int dp : {2, 4}) {
    std::vector<IndexedLoader> ranks;
    for (int r = 0; r < dp; ++r)
      ranks.emplace_back(config(gpl() + " 0.6, " + apache() + " 0.4"), r, dp);
    IndexedLoader reference(config(gpl() + " 0.6, " + apache() + " 0.4"), 0, 1);
    for (int step = 0; step < 5; ++step) {
      const TokenBatch whole = reference.next_train_batch(global_batch);
      std::vector<int32_t> joined;
      for (IndexedLoader& rank : ranks) {
        const TokenBatch part = rank.next_train_batch(global_batch / dp);
        joined.insert(joined.end(), part.inputs.begin(), part.inputs.end());
      }
      ASSERT_EQ(joined, whole.inputs) << "dp " << dp << " step " << step;
    }
    for (const IndexedLoader& rank : ranks) EXPECT_EQ(rank.train_position(), 5 * global_batch);
  }
}

TEST(IndexedLoader, ResumingFromThePositionContinuesTheSameStream) {
  IndexedLoader first(config(gpl()), 0, 1);
  first.next_train_batch(4);
  first.next_train_batch(4);
  const int64_t position = first.train_position();
  const TokenBatch expected = first.next_train_batch(4);
  IndexedLoader resumed(config(gpl()), 0, 1);
  resumed.set_train_position(position);
  EXPECT_EQ(resumed.next_train_batch(4).inputs, expected.inputs);
}

TEST(IndexedLoader, BlendAndValidationSets) {
  const IndexedLoader loader(config(gpl() + " 3, " + apache() + " 1", gpl() + ", " + apache()), 0,
                             1);
  int64_t from_gpl = 0;
  for (int64_t g = 0; g < 400; ++g) from_gpl += loader.train_dataset_of(g) == 0;
  EXPECT_EQ(from_gpl, 300);
  ASSERT_EQ(loader.num_val_sets(), 2);
  EXPECT_EQ(loader.val_set_name(0), "gpl");
  EXPECT_EQ(loader.val_set_name(1), "apache");
  EXPECT_EQ(loader.val_batch(1, 0, 2).inputs, loader.val_batch(1, 0, 2).inputs);
}

TEST(IndexedLoader, EvaluationOpensOnlyValidationSets) {
  // With data.valid set, no training dataset is opened: it may be missing, or not named at all.
  for (const std::string& train : {std::string(), kDir + "no_such_dataset"}) {
    const IndexedLoader loader(config(train, apache()), 0, 1, LoaderUse::evaluation);
    ASSERT_EQ(loader.num_val_sets(), 1);
    EXPECT_EQ(loader.val_set_name(0), "apache");
    EXPECT_EQ(loader.val_batch(0, 0, 2).inputs,
              IndexedLoader(config(gpl(), apache()), 0, 1).val_batch(0, 0, 2).inputs);
  }
  // Without data.valid, evaluation reads the held-out part of the training sets, as training does.
  const IndexedLoader held_out(config(gpl()), 0, 1, LoaderUse::evaluation);
  ASSERT_EQ(held_out.num_val_sets(), 1);
  EXPECT_EQ(held_out.val_batch(0, 0, 2).inputs,
            IndexedLoader(config(gpl()), 0, 1).val_batch(0, 0, 2).inputs);
  EXPECT_EQ(IndexedLoader(config(""), 0, 1, LoaderUse::evaluation).num_val_sets(), 0);
}

TEST(IndexedLoader, BadDataIsAClearError) {
  EXPECT_TRUE(mentions(input_error_message([] { IndexedLoader(config(""), 0, 1); }),
                       "data.train is empty"));
  DataConfig long_sequences = config(gpl());
  long_sequences.seq_len = 1 << 20;
  EXPECT_TRUE(mentions(input_error_message([&] { IndexedLoader(long_sequences, 0, 1); }),
                       "fewer than one sample of data.seq_len + 1 = 1048577"));
  const IndexedLoader loader(config(gpl()), 0, 1);
  EXPECT_TRUE(mentions(input_error_message([&] { loader.val_batch(0, 1000000, 2); }),
                       "validation set gpl has"));

  const std::string prefix = kDir + "out_of_vocab";
  IndexedDatasetWriter writer(prefix, TokenDType::u16);
  std::vector<int32_t> tokens(100, 65);
  tokens[70] = 300;  // the byte tokenizer has 257 ids
  writer.add_document(tokens);
  writer.finish();
  DataConfig bad = config(prefix);
  bad.val_fraction = 0;
  IndexedLoader reader(bad, 0, 1);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         for (int i = 0; i < 10; ++i) reader.next_train_batch(1);
                       }),
                       "token id 300 in sample"));
}

}  // namespace
}  // namespace moe
