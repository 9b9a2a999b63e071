// The .idx layout, little-endian (Megatron-LM megatron/core/datasets/indexed_dataset.py):
//   byte 0   9 bytes  magic "MMIDIDX\0\0"
//   byte 9   u64      version, 1
//   byte 17  u8       dtype code of the tokens in .bin
//   byte 18  u64      sequence count n
//   byte 26  u64      document index count d (documents + 1)
//   byte 34  int32[n] sequence lengths in tokens, then int64[n] byte offsets of the sequences in
//            .bin, then int64[d] document indices.
#include "data/indexed_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/error.h"

namespace moe {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the .bin/.idx readers and writers assume a little-endian host");

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr uint64_t kVersion = 1;
constexpr int64_t kVersionAt = 9, kDTypeAt = 17, kSequencesAt = 18, kDocumentsAt = 26;
constexpr int64_t kHeaderBytes = 34;

template <typename T>
T load(const std::byte* at) {
  T value;
  std::memcpy(&value, at, sizeof value);
  return value;
}

// Calls f with a value of the C++ type a dtype stores (its value is unused).
template <typename F>
decltype(auto) visit_dtype(TokenDType dtype, F&& f) {
  switch (dtype) {
    case TokenDType::u8:
      return f(uint8_t{});
    case TokenDType::i8:
      return f(int8_t{});
    case TokenDType::i16:
      return f(int16_t{});
    case TokenDType::i32:
      return f(int32_t{});
    case TokenDType::i64:
      return f(int64_t{});
    case TokenDType::f64:
      return f(double{});
    case TokenDType::f32:
      return f(float{});
    case TokenDType::u16:
      return f(uint16_t{});
  }
  MOE_THROW(InternalError, "unknown TokenDType ", static_cast<int>(dtype));
}

bool is_dtype_code(unsigned code) { return code >= 1 && code <= 8; }

// True when the stored value is a token id that int32 holds exactly.
template <typename T>
bool is_int32_id(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    return value >= -2147483648.0 && value < 2147483648.0 && std::trunc(value) == value;
  } else if constexpr (sizeof(T) > sizeof(int32_t)) {
    return value >= std::numeric_limits<int32_t>::min() &&
           value <= std::numeric_limits<int32_t>::max();
  } else {
    return true;
  }
}

// A whole file mapped read-only; an empty file maps nothing.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    MOE_CHECK(fd >= 0, "cannot open '", path, "': ", std::strerror(errno));
    struct stat st {};
    const bool stat_ok = ::fstat(fd, &st) == 0;
    const int error = errno;
    if (!stat_ok || !S_ISREG(st.st_mode)) {
      ::close(fd);
      MOE_CHECK(stat_ok, "cannot stat '", path, "': ", std::strerror(error));
      MOE_THROW(InputError, "'", path, "' is not a regular file");
    }
    size_ = st.st_size;
    if (size_ > 0) {
      void* map = ::mmap(nullptr, static_cast<size_t>(size_), PROT_READ, MAP_SHARED, fd, 0);
      const int error = errno;
      ::close(fd);
      MOE_CHECK(map != MAP_FAILED, "cannot map '", path, "' (", size_,
                " bytes): ", std::strerror(error));
      data_ = static_cast<const std::byte*>(map);
    } else {
      ::close(fd);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), static_cast<size_t>(size_));
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  const std::byte* data_ = nullptr;
  int64_t size_ = 0;
};

std::string hex_bytes(const std::byte* data, int64_t count) {
  std::string text;
  char digits[4];
  for (int64_t i = 0; i < count; ++i) {
    std::snprintf(digits, sizeof digits, i ? " %02x" : "%02x", static_cast<unsigned>(data[i]));
    text += digits;
  }
  return text;
}

// Owns a FILE* opened for writing; every failure names the file.
class OutputFile {
 public:
  explicit OutputFile(std::string path) : path_(std::move(path)) {
    file_ = std::fopen(path_.c_str(), "wb");
    MOE_CHECK(file_, "cannot create '", path_, "': ", std::strerror(errno));
    std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  }
  ~OutputFile() {
    if (file_) std::fclose(file_);
  }
  void write(const void* data, size_t bytes) {
    MOE_CHECK(std::fwrite(data, 1, bytes, file_) == bytes, "cannot write '", path_,
              "': ", std::strerror(errno));
  }
  template <typename T>
  void write_value(T value) {
    write(&value, sizeof value);
  }
  void close() {
    const int status = std::fclose(file_);
    file_ = nullptr;
    MOE_CHECK(status == 0, "cannot write '", path_, "': ", std::strerror(errno));
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace

TokenDType token_dtype_for(int64_t vocab_size) {
  MOE_CHECK(vocab_size > 0, "vocabulary size ", vocab_size, " must be positive");
  if (vocab_size <= 256) return TokenDType::u8;
  if (vocab_size <= 65536) return TokenDType::u16;
  MOE_CHECK(vocab_size <= int64_t{std::numeric_limits<int32_t>::max()} + 1, "vocabulary size ",
            vocab_size, " does not fit int32 token ids");
  return TokenDType::i32;
}

int token_dtype_size(TokenDType dtype) {
  return visit_dtype(dtype, [](auto value) { return static_cast<int>(sizeof value); });
}

const char* token_dtype_name(TokenDType dtype) {
  static constexpr const char* kNames[] = {"",    "u8",  "i8",  "i16", "i32",
                                           "i64", "f64", "f32", "u16"};
  MOE_ASSERT(is_dtype_code(static_cast<unsigned>(dtype)));
  return kNames[static_cast<int>(dtype)];
}

// ---- writer ----

struct IndexedDatasetWriter::Impl {
  std::string prefix;
  TokenDType dtype;
  OutputFile bin;
  std::vector<int32_t> lengths;
  std::vector<std::byte> encoded;  // one document in the stored dtype
  bool finished = false;

  Impl(const std::string& prefix_, TokenDType dtype_)
      : prefix(prefix_), dtype(dtype_), bin(prefix_ + ".bin.tmp") {}
};

IndexedDatasetWriter::IndexedDatasetWriter(const std::string& prefix, TokenDType dtype) {
  MOE_CHECK(is_dtype_code(static_cast<unsigned>(dtype)), "unknown token dtype code ",
            static_cast<int>(dtype));
  impl_ = std::make_unique<Impl>(prefix, dtype);
}

IndexedDatasetWriter::~IndexedDatasetWriter() {
  if (impl_ && !impl_->finished) {
    const std::string prefix = impl_->prefix;
    impl_.reset();  // closes the files before they are removed
    std::remove((prefix + ".bin.tmp").c_str());
    std::remove((prefix + ".idx.tmp").c_str());
  }
}

void IndexedDatasetWriter::add_document(std::span<const int32_t> tokens) {
  Impl& w = *impl_;
  MOE_ASSERT(!w.finished, "add_document() after finish()");
  MOE_CHECK(tokens.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), "document ",
            w.lengths.size(), " of ", w.prefix, " has ", tokens.size(),
            " tokens; a sequence holds at most 2^31 - 1");
  visit_dtype(w.dtype, [&](auto type) {
    using T = decltype(type);
    w.encoded.resize(tokens.size() * sizeof(T));
    for (size_t i = 0; i < tokens.size(); ++i) {
      const auto value = static_cast<T>(tokens[i]);
      MOE_CHECK(tokens[i] >= 0 && static_cast<int32_t>(value) == tokens[i], "token ", i,
                " of document ", w.lengths.size(), " is id ", tokens[i], ", which dtype ",
                token_dtype_name(w.dtype), " of ", w.prefix, ".bin cannot hold");
      std::memcpy(w.encoded.data() + i * sizeof(T), &value, sizeof(T));
    }
  });
  w.bin.write(w.encoded.data(), w.encoded.size());
  w.lengths.push_back(static_cast<int32_t>(tokens.size()));
}

void IndexedDatasetWriter::finish() {
  Impl& w = *impl_;
  MOE_ASSERT(!w.finished, "finish() called twice");
  w.bin.close();
  const std::string idx_tmp = w.prefix + ".idx.tmp";
  {
    OutputFile idx(idx_tmp);
    const uint64_t n = w.lengths.size();
    idx.write(kMagic, sizeof kMagic);
    idx.write_value(kVersion);
    idx.write_value(static_cast<uint8_t>(w.dtype));
    idx.write_value(n);
    idx.write_value(n + 1);
    idx.write(w.lengths.data(), n * sizeof(int32_t));
    const int64_t itemsize = token_dtype_size(w.dtype);
    int64_t pointer = 0;
    for (int32_t length : w.lengths) {
      idx.write_value(pointer);
      pointer += length * itemsize;
    }
    for (int64_t document = 0; document <= static_cast<int64_t>(n); ++document)
      idx.write_value(document);
    idx.close();
  }
  for (const char* suffix : {".bin", ".idx"}) {
    const std::string target = w.prefix + suffix;
    const std::string tmp = target + ".tmp";
    MOE_CHECK(std::rename(tmp.c_str(), target.c_str()) == 0, "cannot rename '", tmp, "' to '",
              target, "': ", std::strerror(errno));
  }
  w.finished = true;
}

// ---- reader ----

struct IndexedDataset::Impl {
  std::string prefix, idx_path, bin_path;
  MappedFile idx, bin;
  TokenDType dtype{};
  int64_t itemsize = 0;
  int64_t num_sequences = 0;
  int64_t num_tokens = 0;
  int64_t lengths_at = 0, pointers_at = 0;  // byte offsets of the arrays in .idx
  std::vector<int64_t> document_indices;

  explicit Impl(const std::string& prefix_)
      : prefix(prefix_),
        idx_path(prefix_ + ".idx"),
        bin_path(prefix_ + ".bin"),
        idx(idx_path),
        bin(bin_path) {
    validate();
  }

  int32_t length(int64_t sequence) const {
    return load<int32_t>(idx.data() + lengths_at + 4 * sequence);
  }
  int64_t pointer(int64_t sequence) const {
    return load<int64_t>(idx.data() + pointers_at + 8 * sequence);
  }

  void validate() {
    const std::byte* header = idx.data();
    MOE_CHECK(idx.size() >= kHeaderBytes, idx_path, ": ",
              idx.size() == 0 ? "the file is empty"
                              : "the file has " + std::to_string(idx.size()) + " bytes",
              "; a Megatron-LM index starts with a ", kHeaderBytes, "-byte header");
    MOE_CHECK(std::memcmp(header, kMagic, sizeof kMagic) == 0, idx_path, ": byte 0: magic is ",
              hex_bytes(header, sizeof kMagic),
              ", expected 4d 4d 49 44 49 44 58 00 00 (\"MMIDIDX\\0\\0\", a Megatron-LM "
              "MMapIndexedDataset index)");
    const auto version = load<uint64_t>(header + kVersionAt);
    MOE_CHECK(version == kVersion, idx_path, ": byte ", kVersionAt, ": version is ", version,
              ", expected ", kVersion);
    const auto code = load<uint8_t>(header + kDTypeAt);
    MOE_CHECK(is_dtype_code(code), idx_path, ": byte ", kDTypeAt, ": dtype code is ",
              static_cast<int>(code),
              ", expected 1..8 (u8, i8, i16, i32, i64, f64, f32, u16 in Megatron's numbering)");
    dtype = static_cast<TokenDType>(code);
    itemsize = token_dtype_size(dtype);

    const auto sequences = load<uint64_t>(header + kSequencesAt);
    const auto documents = load<uint64_t>(header + kDocumentsAt);
    const uint64_t room = static_cast<uint64_t>(idx.size() - kHeaderBytes);
    // Each count is checked against the room before it is multiplied, so nothing overflows.
    const bool fits = sequences <= room / 12 && documents <= (room - 12 * sequences) / 8;
    MOE_CHECK(fits && room == 12 * sequences + 8 * documents, idx_path, ": the file has ",
              idx.size(), " bytes, but its header says ", sequences, " sequences (byte ",
              kSequencesAt, ") and ", documents, " document indices (byte ", kDocumentsAt,
              "), which take ", kHeaderBytes, " + 12 * ", sequences, " + 8 * ", documents,
              " bytes");
    num_sequences = static_cast<int64_t>(sequences);
    lengths_at = kHeaderBytes;
    pointers_at = lengths_at + 4 * num_sequences;
    const int64_t documents_at = pointers_at + 8 * num_sequences;

    int64_t end_of_previous = 0;  // in .bin
    for (int64_t s = 0; s < num_sequences; ++s) {
      const int64_t length = this->length(s);
      const int64_t start = pointer(s);
      MOE_CHECK(length >= 0, idx_path, ": sequence ", s, " has length ", length, " (byte ",
                lengths_at + 4 * s, "); lengths must not be negative");
      MOE_CHECK(start == end_of_previous, idx_path, ": sequence ", s, " starts at byte ", start,
                " of ", bin_path, " (pointer at byte ", pointers_at + 8 * s, " of the index)",
                s == 0 ? ", expected 0"
                       : std::string(start < end_of_previous ? ", before" : ", after") +
                             " the end of sequence " + std::to_string(s - 1) + " at byte " +
                             std::to_string(end_of_previous),
                "; the sequences lie back to back from the first byte of the .bin");
      MOE_CHECK(length <= (bin.size() - start) / itemsize, idx_path, ": sequence ", s,
                " (pointer at byte ", pointers_at + 8 * s, ") covers bytes [", start, ", ",
                start + length * itemsize, ") of ", bin_path, ", which has ", bin.size(),
                " bytes (a truncated .bin, or the index of another dataset?)");
      end_of_previous = start + length * itemsize;
      num_tokens += length;
    }
    MOE_CHECK(end_of_previous == bin.size(), idx_path, ": its ", num_sequences,
              " sequences cover bytes [0, ", end_of_previous, ") of ", bin_path, ", which has ",
              bin.size(), " bytes (trailing bytes in the .bin, or the index of another dataset?)");

    document_indices.resize(documents);
    for (uint64_t d = 0; d < documents; ++d) {
      const int64_t at = documents_at + 8 * static_cast<int64_t>(d);
      const auto value = load<int64_t>(idx.data() + at);
      const int64_t previous = d == 0 ? 0 : document_indices[d - 1];
      MOE_CHECK(d > 0 || value == 0, idx_path, ": document index 0 (byte ", at, ") is ", value,
                ", expected 0");
      MOE_CHECK(value >= previous && value <= num_sequences, idx_path, ": document index ", d,
                " (byte ", at, ") is ", value, ", expected a sequence index in [", previous, ", ",
                num_sequences, "]: document indices must not decrease");
      document_indices[d] = value;
    }
    MOE_CHECK(documents > 0 && document_indices.back() == num_sequences, idx_path,
              ": the last document index is ",
              documents > 0 ? std::to_string(document_indices.back()) : "missing",
              ", expected the sequence count ", num_sequences);
  }
};

IndexedDataset::IndexedDataset(const std::string& prefix) : impl_(std::make_unique<Impl>(prefix)) {}
IndexedDataset::~IndexedDataset() = default;
IndexedDataset::IndexedDataset(IndexedDataset&&) noexcept = default;

const std::string& IndexedDataset::prefix() const { return impl_->prefix; }
TokenDType IndexedDataset::dtype() const { return impl_->dtype; }
int64_t IndexedDataset::num_sequences() const { return impl_->num_sequences; }
int64_t IndexedDataset::num_documents() const {
  return static_cast<int64_t>(impl_->document_indices.size()) - 1;
}
int64_t IndexedDataset::num_tokens() const { return impl_->num_tokens; }
std::span<const int64_t> IndexedDataset::document_indices() const {
  return impl_->document_indices;
}

int64_t IndexedDataset::sequence_length(int64_t sequence) const {
  MOE_CHECK(sequence >= 0 && sequence < impl_->num_sequences, impl_->prefix, ": sequence ",
            sequence, " is out of range [0, ", impl_->num_sequences, ")");
  return impl_->length(sequence);
}

void IndexedDataset::read(int64_t sequence, int64_t offset, int64_t count, int32_t* out) const {
  const Impl& d = *impl_;
  const int64_t length = sequence_length(sequence);
  MOE_CHECK(offset >= 0 && count >= 0 && offset <= length && count <= length - offset, d.prefix,
            ": tokens [", offset, ", ", offset + count, ") are outside sequence ", sequence,
            ", which has ", length, " tokens");
  const int64_t start = d.pointer(sequence) + offset * d.itemsize;
  const std::byte* from = d.bin.data() + start;
  visit_dtype(d.dtype, [&](auto type) {
    using T = decltype(type);
    for (int64_t i = 0; i < count; ++i) {
      const T value = load<T>(from + i * static_cast<int64_t>(sizeof(T)));
      MOE_CHECK(is_int32_id(value), d.bin_path, ": sequence ", sequence, ", token ", offset + i,
                " (byte ", start + i * d.itemsize, "): ", +value,
                " is not a token id (an integer in int32 range)");
      out[i] = static_cast<int32_t>(value);
    }
  });
}

void IndexedDataset::check_vocab(int64_t vocab_size) const {
  const Impl& d = *impl_;
  if ((d.dtype == TokenDType::u8 && vocab_size >= 256) ||
      (d.dtype == TokenDType::u16 && vocab_size >= 65536))
    return;
  constexpr int64_t kChunk = 1 << 16;
  std::vector<int32_t> tokens(kChunk);
  for (int64_t s = 0; s < d.num_sequences; ++s) {
    const int64_t length = d.length(s);
    for (int64_t offset = 0; offset < length; offset += kChunk) {
      const int64_t count = std::min(kChunk, length - offset);
      read(s, offset, count, tokens.data());
      for (int64_t i = 0; i < count; ++i) {
        MOE_CHECK(tokens[i] >= 0 && tokens[i] < vocab_size, d.bin_path, ": sequence ", s,
                  ", token ", offset + i, " (byte ", d.pointer(s) + (offset + i) * d.itemsize,
                  ") is id ", tokens[i], ", outside the tokenizer's vocabulary [0, ", vocab_size,
                  ")");
      }
    }
  }
}

}  // namespace moe
