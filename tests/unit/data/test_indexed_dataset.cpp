// The indexed dataset (.bin/.idx): write -> read round trips for every dtype on real text, the
// Megatron layout byte for byte (a hand-built index with several sequences per document), every
// bad file an InputError naming the file and the byte or index at fault (empty, truncated, wrong
// magic/version/dtype, sizes, pointers beyond .bin, overlapping or apart, a .bin longer than its
// sequences, the .idx of another dataset, bad document indices), token values that are no int32
// ids, check_vocab, the writer's temporary files, and that opening and reading one sequence of a
// 200 MB dataset does not read the dataset.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "data/indexed_dataset.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::input_error_message;
using testing::mentions;

constexpr TokenDType kAllDTypes[] = {TokenDType::u8,  TokenDType::i8,  TokenDType::i16,
                                     TokenDType::i32, TokenDType::i64, TokenDType::f64,
                                     TokenDType::f32, TokenDType::u16};

// The paragraphs of a real text as documents of byte tokens.
std::vector<std::vector<int32_t>> license_documents() {
  std::ifstream in("/usr/share/common-licenses/Apache-2.0");
  std::vector<std::vector<int32_t>> documents(1);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) {
      if (!documents.back().empty()) documents.emplace_back();
      continue;
    }
    for (unsigned char c : line + "\n") documents.back().push_back(c);
  }
  if (documents.back().empty()) documents.pop_back();
  return documents;
}

std::vector<int32_t> read_all(const IndexedDataset& data, int64_t sequence) {
  std::vector<int32_t> tokens(data.sequence_length(sequence));
  data.read(sequence, 0, static_cast<int64_t>(tokens.size()), tokens.data());
  return tokens;
}

// A .idx written field by field, so tests can write what our writer never would.
struct RawIndex {
  std::string magic = std::string("MMIDIDX\0\0", 9);
  uint64_t version = 1;
  uint8_t dtype = static_cast<uint8_t>(TokenDType::u16);
  std::vector<int32_t> lengths;
  std::vector<int64_t> pointers;
  std::vector<int64_t> documents;

  void write(const std::string& path) const {
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = lengths.size(), d = documents.size();
    out.write(magic.data(), static_cast<std::streamsize>(magic.size()));
    out.write(reinterpret_cast<const char*>(&version), 8);
    out.write(reinterpret_cast<const char*>(&dtype), 1);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(reinterpret_cast<const char*>(&d), 8);
    out.write(reinterpret_cast<const char*>(lengths.data()), static_cast<std::streamsize>(4 * n));
    out.write(reinterpret_cast<const char*>(pointers.data()), static_cast<std::streamsize>(8 * n));
    out.write(reinterpret_cast<const char*>(documents.data()), static_cast<std::streamsize>(8 * d));
  }
};

class IndexedDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("moe_indexed_dataset_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    prefix_ = (dir_ / "data").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Three documents of u16 tokens: lengths 3, 0 and 2.
  void write_small() {
    IndexedDatasetWriter writer(prefix_, TokenDType::u16);
    writer.add_document(std::vector<int32_t>{1, 2, 3});
    writer.add_document(std::vector<int32_t>{});
    writer.add_document(std::vector<int32_t>{300, 256});
    writer.finish();
  }
  void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  }
  void patch(const std::string& path, int64_t at, const void* bytes, size_t size) {
    std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(at);
    file.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
  }
  std::string open_error() {
    return input_error_message([&] { IndexedDataset data(prefix_); });
  }
  std::string idx() const { return prefix_ + ".idx"; }
  std::string bin() const { return prefix_ + ".bin"; }

  fs::path dir_;
  std::string prefix_;
};

TEST_F(IndexedDatasetTest, RoundTripsRealTextInEveryDType) {
  const auto documents = license_documents();
  ASSERT_GT(documents.size(), 20u);
  for (TokenDType dtype : kAllDTypes) {
    SCOPED_TRACE(token_dtype_name(dtype));
    // i8 holds ids up to 127: plain ASCII text fits, so the license text does.
    IndexedDatasetWriter writer(prefix_, dtype);
    int64_t tokens = 0;
    for (const auto& document : documents) {
      writer.add_document(document);
      tokens += static_cast<int64_t>(document.size());
    }
    writer.finish();

    const IndexedDataset data(prefix_);
    EXPECT_EQ(data.dtype(), dtype);
    EXPECT_EQ(fs::file_size(bin()), static_cast<uintmax_t>(tokens * token_dtype_size(dtype)));
    ASSERT_EQ(data.num_sequences(), static_cast<int64_t>(documents.size()));
    EXPECT_EQ(data.num_documents(), data.num_sequences());
    EXPECT_EQ(data.num_tokens(), tokens);
    const auto starts = data.document_indices();
    ASSERT_EQ(starts.size(), documents.size() + 1);
    for (size_t d = 0; d <= documents.size(); ++d) EXPECT_EQ(starts[d], static_cast<int64_t>(d));
    for (size_t d = 0; d < documents.size(); ++d) ASSERT_EQ(read_all(data, d), documents[d]);
    std::vector<int32_t> middle(5);
    data.read(3, 2, 5, middle.data());
    EXPECT_EQ(middle, std::vector<int32_t>(documents[3].begin() + 2, documents[3].begin() + 7));
  }
}

TEST_F(IndexedDatasetTest, WritesMegatronLayoutByteForByte) {
  write_small();
  std::ifstream in(idx(), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string expected("MMIDIDX\0\0", 9);
  auto append = [&](const auto& value) {
    expected.append(reinterpret_cast<const char*>(&value), sizeof value);
  };
  append(uint64_t{1});
  append(uint8_t{8});  // u16
  append(uint64_t{3});
  append(uint64_t{4});
  for (int32_t length : {3, 0, 2}) append(length);
  for (int64_t pointer : {0, 6, 6}) append(pointer);
  for (int64_t document : {0, 1, 2, 3}) append(document);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(fs::file_size(bin()), 10u);
}

TEST_F(IndexedDatasetTest, ReadsSeveralSequencesPerDocument) {
  // Megatron's builder can put several sequences in a document (add_item ... end_document); the
  // second document here is sequences 2 and 3.
  const std::vector<int32_t> tokens = {9, 8, 7, 6, 5, 4, 3, 2};
  std::string data;
  for (int32_t t : tokens) data.append(reinterpret_cast<const char*>(&t), 4);
  write_bytes(bin(), data);
  RawIndex index;
  index.dtype = static_cast<uint8_t>(TokenDType::i32);
  index.lengths = {2, 3, 1, 2};
  index.pointers = {0, 8, 20, 24};
  index.documents = {0, 2, 4};
  index.write(idx());

  const IndexedDataset dataset(prefix_);
  EXPECT_EQ(dataset.num_sequences(), 4);
  EXPECT_EQ(dataset.num_documents(), 2);
  EXPECT_EQ(dataset.num_tokens(), 8);
  EXPECT_EQ(read_all(dataset, 1), (std::vector<int32_t>{7, 6, 5}));
  EXPECT_EQ(read_all(dataset, 3), (std::vector<int32_t>{3, 2}));
}

TEST_F(IndexedDatasetTest, TokenDTypeIsTheNarrowestThatHoldsTheVocabulary) {
  EXPECT_EQ(token_dtype_for(256), TokenDType::u8);
  EXPECT_EQ(token_dtype_for(257), TokenDType::u16);
  EXPECT_EQ(token_dtype_for(65536), TokenDType::u16);
  EXPECT_EQ(token_dtype_for(65537), TokenDType::i32);
  EXPECT_TRUE(mentions(input_error_message([] { token_dtype_for(0); }), "must be positive"));
}

TEST_F(IndexedDatasetTest, WriterRejectsIdsTheDTypeCannotHold) {
  {
    IndexedDatasetWriter writer(prefix_, TokenDType::u8);
    writer.add_document(std::vector<int32_t>{1, 255});
    const std::string message = input_error_message([&] {
      writer.add_document(std::vector<int32_t>{4, 256});
    });
    EXPECT_TRUE(mentions(message, "token 1 of document 1 is id 256, which dtype u8"));
    EXPECT_TRUE(mentions(
        input_error_message([&] { writer.add_document(std::vector<int32_t>{-1}); }), "is id -1"));
    EXPECT_TRUE(
        mentions(input_error_message([&] { writer.add_document(std::vector<int32_t>{1 << 24}); }),
                 "is id 16777216"));
  }
  // The unfinished writer left nothing behind.
  EXPECT_TRUE(fs::is_empty(dir_));
  IndexedDatasetWriter f32(prefix_, TokenDType::f32);
  EXPECT_TRUE(
      mentions(input_error_message([&] { f32.add_document(std::vector<int32_t>{(1 << 24) + 1}); }),
               "which dtype f32"));
}

TEST_F(IndexedDatasetTest, FilesAppearOnlyOnFinish) {
  IndexedDatasetWriter writer(prefix_, TokenDType::u16);
  writer.add_document(std::vector<int32_t>{1, 2});
  EXPECT_FALSE(fs::exists(bin()));
  EXPECT_FALSE(fs::exists(idx()));
  writer.finish();
  EXPECT_TRUE(fs::exists(bin()));
  EXPECT_TRUE(fs::exists(idx()));
  EXPECT_FALSE(fs::exists(bin() + ".tmp"));
  EXPECT_FALSE(fs::exists(idx() + ".tmp"));
}

TEST_F(IndexedDatasetTest, MissingAndEmptyFiles) {
  EXPECT_TRUE(mentions(open_error(), "cannot open '" + idx() + "'"));
  write_small();
  fs::remove(bin());
  EXPECT_TRUE(mentions(open_error(), "cannot open '" + bin() + "'"));
  write_small();
  write_bytes(idx(), "");
  EXPECT_TRUE(mentions(open_error(), idx() + ": the file is empty"));
  write_bytes(idx(), "MMIDIDX");
  EXPECT_TRUE(mentions(open_error(), "the file has 7 bytes; a Megatron-LM index starts with a 34"));
}

TEST_F(IndexedDatasetTest, BadHeaderFields) {
  write_small();
  patch(idx(), 0, "MMIDIDY", 7);
  EXPECT_TRUE(mentions(open_error(), idx() + ": byte 0: magic is 4d 4d 49 44 49 44 59 00 00"));
  write_small();
  const uint64_t version = 2;
  patch(idx(), 9, &version, 8);
  EXPECT_TRUE(mentions(open_error(), idx() + ": byte 9: version is 2, expected 1"));
  for (uint8_t code : {0, 9, 255}) {
    write_small();
    patch(idx(), 17, &code, 1);
    EXPECT_TRUE(mentions(open_error(), "byte 17: dtype code is " + std::to_string(code)));
  }
}

TEST_F(IndexedDatasetTest, CountsThatDoNotMatchTheFileSize) {
  write_small();
  fs::resize_file(idx(), fs::file_size(idx()) - 1);  // truncated index
  EXPECT_TRUE(mentions(open_error(), "the file has 101 bytes, but its header says 3 sequences"));
  for (uint64_t huge : {uint64_t{1} << 61, ~uint64_t{0}}) {  // no overflow in the size check
    write_small();
    patch(idx(), 18, &huge, 8);
    EXPECT_TRUE(mentions(open_error(), std::to_string(huge) + " sequences (byte 18)"));
    write_small();
    patch(idx(), 26, &huge, 8);
    EXPECT_TRUE(mentions(open_error(), std::to_string(huge) + " document indices (byte 26)"));
  }
}

TEST_F(IndexedDatasetTest, SequencesOutsideTheBinFile) {
  write_small();
  fs::resize_file(bin(), 9);  // truncated .bin: the last token lacks a byte
  EXPECT_TRUE(mentions(open_error(), "sequence 2 (pointer at byte 62) covers bytes [6, 10) of " +
                                         bin() + ", which has 9 bytes"));
  write_small();
  const int64_t beyond = 1 << 20;
  patch(idx(), 62, &beyond, 8);
  EXPECT_TRUE(mentions(open_error(), "sequence 2 starts at byte 1048576 of " + bin() +
                                         " (pointer at byte 62 of the index), after the end of "
                                         "sequence 1 at byte 6"));
  write_small();
  const int64_t negative = -2;
  patch(idx(), 46, &negative, 8);
  EXPECT_TRUE(mentions(open_error(), "sequence 0 starts at byte -2"));
  write_small();
  const int32_t length = 1 << 30;  // pointer + length * 2 overflows nothing either
  patch(idx(), 34, &length, 4);
  EXPECT_TRUE(mentions(open_error(), "covers bytes [0, 2147483648)"));
}

TEST_F(IndexedDatasetTest, NegativeLengthsAndOverlappingSequences) {
  write_small();
  const int32_t negative = -1;
  patch(idx(), 38, &negative, 4);
  EXPECT_TRUE(mentions(open_error(), "sequence 1 has length -1 (byte 38)"));
  write_small();
  const int64_t inside_first = 2;
  patch(idx(), 54, &inside_first, 8);
  EXPECT_TRUE(mentions(open_error(), "sequence 1 starts at byte 2 of " + bin() +
                                         " (pointer at byte 54 of the index), before the end "
                                         "of sequence 0 at byte 6; the sequences lie back to "
                                         "back from the first byte of the .bin"));
}

TEST_F(IndexedDatasetTest, TheSequencesCoverTheBinExactly) {
  write_small();  // 10 bytes of .bin
  std::ofstream(bin(), std::ios::binary | std::ios::app) << "xy";
  EXPECT_TRUE(mentions(open_error(), idx() + ": its 3 sequences cover bytes [0, 10) of " + bin() +
                                         ", which has 12 bytes (trailing bytes in the .bin, or "
                                         "the index of another dataset?)"));

  // The .idx of a shorter dataset beside this .bin: every sequence fits, the text is cut wrong.
  write_small();
  IndexedDatasetWriter other(prefix_ + "_other", TokenDType::u16);
  other.add_document(std::vector<int32_t>{7, 7});
  other.add_document(std::vector<int32_t>{7});
  other.finish();
  fs::copy_file(prefix_ + "_other.idx", idx(), fs::copy_options::overwrite_existing);
  EXPECT_TRUE(mentions(open_error(),
                       "its 2 sequences cover bytes [0, 6) of " + bin() + ", which has 10 bytes"));

  // A gap between sequences, or before the first, leaves bytes of the .bin in no sequence.
  write_small();
  const int64_t gap = 8;
  patch(idx(), 62, &gap, 8);
  EXPECT_TRUE(mentions(open_error(), "sequence 2 starts at byte 8 of " + bin() +
                                         " (pointer at byte 62 of the index), after the end of "
                                         "sequence 1 at byte 6"));
  write_small();
  const int64_t late = 2;
  patch(idx(), 46, &late, 8);
  EXPECT_TRUE(mentions(open_error(), "sequence 0 starts at byte 2 of " + bin() +
                                         " (pointer at byte 46 of the index), expected 0"));
}

TEST_F(IndexedDatasetTest, BadDocumentIndices) {
  const std::vector<std::pair<std::vector<int64_t>, std::string>> cases = {
      {{1, 2, 3}, "document index 0 (byte 70) is 1, expected 0"},
      {{0, 2, 1, 3}, "document index 2 (byte 86) is 1, expected a sequence index in [2, 3]"},
      {{0, 4}, "document index 1 (byte 78) is 4"},
      {{0, 1}, "the last document index is 1, expected the sequence count 3"},
      {{}, "the last document index is missing"},
  };
  for (const auto& [documents, expected] : cases) {
    write_small();
    RawIndex index;
    index.lengths = {3, 0, 2};
    index.pointers = {0, 6, 6};
    index.documents = documents;
    index.write(idx());
    EXPECT_TRUE(mentions(open_error(), idx() + ": " + expected));
  }
}

TEST_F(IndexedDatasetTest, ReadsOutsideASequence) {
  write_small();
  const IndexedDataset data(prefix_);
  int32_t out[4];
  EXPECT_TRUE(mentions(input_error_message([&] { data.read(3, 0, 1, out); }),
                       "sequence 3 is out of range [0, 3)"));
  EXPECT_TRUE(mentions(input_error_message([&] { data.read(0, 2, 2, out); }),
                       "tokens [2, 4) are outside sequence 0, which has 3 tokens"));
  EXPECT_TRUE(mentions(input_error_message([&] { data.read(0, -1, 1, out); }), "tokens [-1, 0)"));
}

TEST_F(IndexedDatasetTest, StoredValuesThatAreNoTokenIds) {
  const int64_t big = int64_t{1} << 40;
  write_bytes(bin(), std::string(reinterpret_cast<const char*>(&big), 8));
  RawIndex index;
  index.dtype = static_cast<uint8_t>(TokenDType::i64);
  index.lengths = {1};
  index.pointers = {0};
  index.documents = {0, 1};
  index.write(idx());
  int32_t out;
  {
    const IndexedDataset data(prefix_);
    EXPECT_TRUE(
        mentions(input_error_message([&] { data.read(0, 0, 1, &out); }),
                 bin() + ": sequence 0, token 0 (byte 0): 1099511627776 is not a token id"));
  }
  const float fraction = 2.5f;
  write_bytes(bin(), std::string(reinterpret_cast<const char*>(&fraction), 4));
  index.dtype = static_cast<uint8_t>(TokenDType::f32);
  index.write(idx());
  const IndexedDataset data(prefix_);
  EXPECT_TRUE(
      mentions(input_error_message([&] { data.read(0, 0, 1, &out); }), "2.5 is not a token id"));
}

TEST_F(IndexedDatasetTest, CheckVocabNamesTheFirstIdOutside) {
  write_small();  // ids 1, 2, 3 | | 300, 256
  const IndexedDataset data(prefix_);
  data.check_vocab(301);
  EXPECT_TRUE(mentions(input_error_message([&] { data.check_vocab(257); }),
                       bin() + ": sequence 2, token 0 (byte 6) is id 300, outside the "
                               "tokenizer's vocabulary [0, 257)"));
  EXPECT_TRUE(mentions(input_error_message([&] { data.check_vocab(3); }),
                       "sequence 0, token 2 (byte 4) is id 3"));

  IndexedDatasetWriter writer(prefix_ + "_i32", TokenDType::i32);
  writer.add_document(std::vector<int32_t>{5, 70000});
  writer.finish();
  const IndexedDataset wide(prefix_ + "_i32");
  EXPECT_TRUE(mentions(input_error_message([&] { wide.check_vocab(65536); }),
                       "token 1 (byte 4) is id 70000"));
}

int64_t resident_kb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  ADD_FAILURE() << "no VmRSS in /proc/self/status";
  return 0;
}

TEST_F(IndexedDatasetTest, OpeningAndReadingOneSequenceDoesNotReadTheDataset) {
  // 200 MB of .bin (a sparse file: no disk written) in 100 sequences of 1M u16 tokens.
  constexpr int64_t kSequences = 100, kLength = 1 << 20, kBinBytes = kSequences * kLength * 2;
  std::ofstream(bin()).close();
  fs::resize_file(bin(), kBinBytes);
  RawIndex index;
  for (int64_t s = 0; s < kSequences; ++s) {
    index.lengths.push_back(kLength);
    index.pointers.push_back(s * kLength * 2);
  }
  index.documents = {0, kSequences};
  index.write(idx());

  const int64_t before_kb = resident_kb();
  const IndexedDataset data(prefix_);
  std::vector<int32_t> tokens(4096, -1);
  data.read(57, kLength - 4096, 4096, tokens.data());
  const int64_t grown_kb = resident_kb() - before_kb;
  EXPECT_EQ(data.num_tokens(), kSequences * kLength);
  EXPECT_EQ(tokens, std::vector<int32_t>(4096, 0));
  EXPECT_LT(grown_kb, kBinBytes / 1024 / 20) << "opening and one read grew VmRSS by " << grown_kb
                                             << " kB; the .bin has " << kBinBytes / 1024 << " kB";
}

}  // namespace
}  // namespace moe
