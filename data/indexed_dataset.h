// Megatron-LM's indexed dataset: PREFIX.bin holds the tokens of every sequence back to back,
// PREFIX.idx says where each sequence starts, how long it is and which sequences begin documents.
// Datasets written by Megatron's preprocess_data.py load here and ours load there; docs/data.md
// gives the byte layout.
//
// Decisions:
// - Both files are memory-mapped, never read whole: opening a multi-GB dataset touches only the
//   .idx and the .bin pages a read asks for. The .idx arrays are unaligned in the file (the header
//   is 34 bytes), so they are read element by element with memcpy; only the document indices are
//   copied out, because document_indices() hands out a span.
// - The reader validates everything it can before any read (magic, version, dtype code, the file
//   size the counts imply, lengths >= 0, the sequences back to back from byte 0 of the .bin to its
//   last byte, as Megatron writes them, document indices from 0 up to num_sequences without
//   decreasing): a bad file, or a .idx beside the .bin of another dataset, is an InputError naming
//   the file and the byte or index at fault, never a crash. A file changed while mapped is outside
//   what can be checked.
// - Tokens are handed out as int32 whatever the stored dtype; a stored value that is no int32 id
//   (an i64 beyond int32, a float with a fraction) is an InputError when read. check_vocab() scans
//   every token against a vocabulary size.
// - One sequence per document when we write (document_indices = 0, 1, ..., n).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace moe {

// Megatron's dtype codes.
enum class TokenDType : uint8_t {
  u8 = 1,
  i8 = 2,
  i16 = 3,
  i32 = 4,
  i64 = 5,
  f64 = 6,
  f32 = 7,
  u16 = 8
};

// The narrowest integer dtype that holds ids in [0, vocab_size): u8, u16 or i32.
TokenDType token_dtype_for(int64_t vocab_size);
int token_dtype_size(TokenDType dtype);          // bytes per token
const char* token_dtype_name(TokenDType dtype);  // "u16", ...

class IndexedDatasetWriter {
 public:
  // Writes PREFIX.bin and PREFIX.idx; both appear only when finish() succeeds (written as
  // PREFIX.bin.tmp and PREFIX.idx.tmp, then renamed), so an interrupted run never leaves a half
  // dataset. Destroying an unfinished writer removes the temporary files.
  IndexedDatasetWriter(const std::string& prefix, TokenDType dtype);
  ~IndexedDatasetWriter();
  // One document = one sequence. InputError when a token does not fit the dtype.
  void add_document(std::span<const int32_t> tokens);
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class IndexedDataset {
 public:
  explicit IndexedDataset(const std::string& prefix);
  ~IndexedDataset();
  IndexedDataset(IndexedDataset&&) noexcept;

  const std::string& prefix() const;
  TokenDType dtype() const;
  int64_t num_sequences() const;
  int64_t num_documents() const;  // document_indices().size() - 1
  int64_t sequence_length(int64_t sequence) const;
  int64_t num_tokens() const;  // sum of all sequence lengths
  // Sequence indices where documents start, plus num_sequences() at the end (Megatron's layout).
  std::span<const int64_t> document_indices() const;
  // Tokens [offset, offset + count) of one sequence, as int32, into out.
  void read(int64_t sequence, int64_t offset, int64_t count, int32_t* out) const;
  // Scans every token; InputError naming the first sequence and offset whose id is outside
  // [0, vocab_size). Skips the scan when the dtype cannot hold such an id (u8 with 256 or more).
  void check_vocab(int64_t vocab_size) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe
