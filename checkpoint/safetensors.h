// Safetensors (Hugging Face's tensor file format): a reader over a memory map and a streaming
// writer, our own code, for importing and exporting weights (Hugging Face checkpoints, PyTorch).
//
// Layout: 8 bytes little-endian uint64 N, then N bytes of UTF-8 JSON, an object that maps each
// tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, plus an optional
// "__metadata__" object of strings; then the data buffer, which the offsets index from its start.
//
// Decisions:
// - The reader validates everything before anything is read, as strictly as the reference
//   implementation (huggingface/safetensors), and more: header length within the file and at most
//   100,000,000 bytes, UTF-8, a JSON object, each entry's fields and types, known dtype, shape
//   dimensions >= 0 whose byte count does not overflow, data_offsets [begin, end] with
//   end - begin == the bytes the shape needs, every tensor inside the data buffer, and the tensors
//   tiling the buffer exactly (no gap, no overlap, nothing after the last). Duplicate names (our
//   JSON parser keeps them) and non-string metadata values are errors. Unknown members of an entry
//   are ignored, as the reference does. Every failure is an InputError naming the file and the
//   tensor or byte at fault, never a crash (tests/fuzz/fuzz_safetensors.cpp).
// - JSON numbers are doubles (formats/json.h): shapes and offsets must be integral and at most
//   2^53.
// - The file is memory-mapped read-only and nothing but the header is touched until a tensor is
//   asked for, so a file larger than memory converts tensor by tensor; release() drops a tensor's
//   pages afterwards, which keeps the resident size near the largest tensor. A file truncated
//   while mapped is outside what can be checked (SIGBUS).
// - tensors() lists the tensors in data-buffer order (by data_offsets), which is the order to
//   stream them in; for files we write it is also the header order.
// - The writer takes every tensor's name, dtype and shape up front, so it can write the header
//   first and then stream the data one tensor at a time, in the declared order. The header is
//   padded with spaces to a multiple of 8 bytes, as the reference pads it, so that the data buffer
//   is 8-byte aligned. It writes PATH.tmp and renames it to PATH in finish(), after an fsync: a
//   failed or abandoned write never leaves a file under PATH.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moe {

// Reader and writer know the format's dtypes: BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2,
// F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64 (F4: 4 bits, F6_*: 6,
// BOOL: 8); any other name is an InputError naming the valid ones.

struct SafetensorsTensor {
  std::string name;
  std::string dtype;               // as in the file: "F32", "BF16", "I8", ...
  std::optional<DType> moe_dtype;  // ours when there is one; nullopt: unsupported by MoEForge
  std::vector<int64_t> shape;      // empty for a 0-d scalar
  int64_t numel = 0;               // 1 for a scalar, 0 when a dimension is 0
  int64_t offset = 0;              // bytes from the start of the data buffer (data_offsets[0])
  int64_t size = 0;                // bytes (data_offsets[1] - data_offsets[0])
};

class SafetensorsFile {
 public:
  // Maps and validates the file; InputError naming the file and the problem.
  explicit SafetensorsFile(const std::string& path);
  // Validates a file image already in memory, which is not copied and must outlive this object;
  // name stands for the file in errors. release() does nothing on such an image.
  SafetensorsFile(std::span<const std::byte> image, const std::string& name);
  ~SafetensorsFile();  // unmaps
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;

  const std::string& path() const;
  int64_t header_size() const;                            // N: the data buffer starts at byte 8 + N
  int64_t data_size() const;                              // bytes in the data buffer
  const std::vector<SafetensorsTensor>& tensors() const;  // in data-buffer order
  const SafetensorsTensor* find(const std::string& name) const;  // nullptr when absent
  const SafetensorsTensor& at(const std::string& name) const;    // InputError when absent
  const std::map<std::string, std::string>& metadata() const;    // "__metadata__"

  // The tensor's bytes as stored (little-endian, unaligned in general: read with memcpy).
  const std::byte* data(const SafetensorsTensor& tensor) const;
  // numel values converted from F32, F16, BF16 or F64 (round to nearest even into F32);
  // InputError for any other dtype.
  void read_f32(const SafetensorsTensor& tensor, float* out) const;
  void read_f64(const SafetensorsTensor& tensor, double* out) const;
  // Drops the tensor's pages from this process (madvise MADV_DONTNEED on the whole pages it
  // touches); reading it again maps them again from the page cache or the disk.
  void release(const SafetensorsTensor& tensor) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SafetensorsSpec {
  std::string name;
  std::string dtype;  // a safetensors dtype name, "F32", "BF16", ...
  std::vector<int64_t> shape;
};

class SafetensorsWriter {
 public:
  // Checks the specs (known dtypes, dimensions >= 0, whole bytes, unique names, none named
  // "__metadata__"), lays the tensors out in the given order and writes the header to PATH.tmp.
  SafetensorsWriter(const std::string& path, std::vector<SafetensorsSpec> tensors,
                    std::map<std::string, std::string> metadata = {});
  ~SafetensorsWriter();  // an unfinished writer removes PATH.tmp
  SafetensorsWriter(SafetensorsWriter&&) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&&) noexcept;

  // The next tensor's bytes, exactly its size; InputError on another name (tensors are written in
  // the declared order) or another size.
  void write(const std::string& name, const void* bytes, size_t size);
  // InputError unless every tensor was written; then flushes, fsyncs and renames PATH.tmp to PATH.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// n floats in the stored form of dtype: F32, F64, or BF16 and F16 rounded to nearest even
// (core/half.h); InputError for any other dtype.
std::vector<std::byte> encode(const float* values, int64_t n, const std::string& dtype);

}  // namespace moe
