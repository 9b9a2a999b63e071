#include "checkpoint/safetensors.h"

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
#include <filesystem>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "core/half.h"
#include "formats/json.h"
#include "formats/unicode.h"

namespace moe {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the safetensors reader and writer assume a little-endian host");

constexpr uint64_t kMaxHeaderBytes = 100'000'000;      // the reference's MAX_HEADER_SIZE
constexpr int64_t kMaxJsonInteger = int64_t{1} << 53;  // JSON numbers are doubles (formats/json.h)

struct DTypeInfo {
  const char* name;
  int bits;
  std::optional<DType> ours;
};

constexpr DTypeInfo kDTypes[] = {
    {"BOOL", 8, std::nullopt},    {"F4", 4, std::nullopt},      {"F6_E2M3", 6, std::nullopt},
    {"F6_E3M2", 6, std::nullopt}, {"U8", 8, std::nullopt},      {"I8", 8, std::nullopt},
    {"F8_E5M2", 8, std::nullopt}, {"F8_E4M3", 8, std::nullopt}, {"F8_E8M0", 8, std::nullopt},
    {"I16", 16, std::nullopt},    {"U16", 16, std::nullopt},    {"F16", 16, DType::f16},
    {"BF16", 16, DType::bf16},    {"I32", 32, DType::i32},      {"U32", 32, std::nullopt},
    {"F32", 32, DType::f32},      {"C64", 64, std::nullopt},    {"F64", 64, DType::f64},
    {"I64", 64, DType::i64},      {"U64", 64, std::nullopt},
};

const DTypeInfo* find_dtype(std::string_view name) {
  for (const DTypeInfo& info : kDTypes)
    if (name == info.name) return &info;
  return nullptr;
}

std::string dtype_names() {
  std::string names;
  for (const DTypeInfo& info : kDTypes) names += std::string(names.empty() ? "" : ", ") + info.name;
  return names;
}

// InputError "<where>: unknown dtype 'X' (expected one of ...)" when the name is no dtype.
const DTypeInfo& dtype_info(const std::string& name, const std::string& where) {
  const DTypeInfo* info = find_dtype(name);
  MOE_CHECK(info, where, "unknown dtype '", name, "' (expected one of ", dtype_names(), ")");
  return *info;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? "," : "") + std::to_string(shape[i]);
  return text + "]";
}

// The element count and byte size of a tensor; where ("'file': tensor 'x': ") starts the errors.
std::pair<int64_t, int64_t> tensor_extent(const DTypeInfo& dtype, const std::vector<int64_t>& shape,
                                          const std::string& where) {
  int64_t numel = 1, bits = 0;
  for (size_t i = 0; i < shape.size(); ++i)
    MOE_CHECK(shape[i] >= 0, where, "shape[", i, "] is ", shape[i],
              "; dimensions must not be negative");
  bool overflow = false;
  for (int64_t dim : shape) overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
  overflow = overflow || __builtin_mul_overflow(numel, int64_t{dtype.bits}, &bits);
  MOE_CHECK(!overflow, where, "shape ", shape_text(shape), " of ", dtype.name,
            " has more bytes than 64-bit sizes hold");
  MOE_CHECK(bits % 8 == 0, where, "shape ", shape_text(shape), " of ", dtype.name, " is ", bits,
            " bits, not a whole number of bytes");
  return {numel, bits / 8};
}

// InputError naming the first byte of text that is not UTF-8.
void check_utf8(std::string_view text, const std::string& where) {
  for (size_t pos = 0; pos < text.size();) {
    const unicode::Utf8Char ch = unicode::decode_utf8(text, pos);
    if (ch.code == unicode::kInvalidByte) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[pos]));
      MOE_THROW(InputError, where, "byte ", pos, " (", byte, ") is not UTF-8");
    }
    pos += static_cast<size_t>(ch.size);
  }
}

const JsonValue* member(const JsonObject& object, std::string_view key) {
  for (const auto& [name, value] : object)
    if (name == key) return &value;
  return nullptr;
}

// A JSON number that is an integer of magnitude at most 2^53, which doubles hold exactly.
int64_t json_integer(const JsonValue& value, const std::string& where, const std::string& what) {
  const double* number = std::get_if<double>(&value.data());
  MOE_CHECK(number, where, what, " is ", value.kind_name(), ", expected an integer");
  if (*number != std::floor(*number) || std::fabs(*number) > static_cast<double>(kMaxJsonInteger)) {
    std::ostringstream text;
    text << *number;
    MOE_THROW(InputError, where, what, " is ", text.str(), ", expected an integer of at most 2^53");
  }
  return static_cast<int64_t>(*number);
}

// Floats as stored and as handed out.
template <typename Out, typename Stored>
Out widen(Stored value) {
  if constexpr (std::is_same_v<Stored, bf16_t>) {
    return static_cast<Out>(bf16_to_float(value));
  } else if constexpr (std::is_same_v<Stored, f16_t>) {
    return static_cast<Out>(f16_to_float(value));
  } else {
    return static_cast<Out>(value);
  }
}

template <typename Stored>
Stored narrow(float value) {
  if constexpr (std::is_same_v<Stored, bf16_t>) {
    return float_to_bf16(value);
  } else if constexpr (std::is_same_v<Stored, f16_t>) {
    return float_to_f16(value);
  } else {
    return static_cast<Stored>(value);
  }
}

// Calls f with a value of the C++ type a floating dtype stores; false for any other dtype.
template <typename F>
bool visit_float(std::optional<DType> dtype, F&& f) {
  if (dtype == DType::f32) return f(float{}), true;
  if (dtype == DType::f64) return f(double{}), true;
  if (dtype == DType::bf16) return f(bf16_t{}), true;
  if (dtype == DType::f16) return f(f16_t{}), true;
  return false;
}

}  // namespace

// ---- reader ----

struct SafetensorsFile::Impl {
  std::string path;
  const std::byte* image = nullptr;
  size_t image_size = 0;
  bool mapped = false;  // image is our mmap of the file
  int64_t header_size = 0, data_at = 0, data_size = 0;
  std::vector<SafetensorsTensor> tensors;
  std::unordered_map<std::string, size_t> index;  // name -> position in tensors
  std::map<std::string, std::string> metadata;
  bool has_metadata = false;

  ~Impl() {
    if (mapped) ::munmap(const_cast<std::byte*>(image), image_size);
  }

  void map(const std::string& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    MOE_CHECK(fd >= 0, "cannot open '", file, "': ", std::strerror(errno));
    struct stat st {};
    const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    void* map = MAP_FAILED;
    if (regular && st.st_size > 0)
      map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    const int error = errno;
    ::close(fd);
    MOE_CHECK(regular, "'", file, "' is not a regular file");
    if (st.st_size == 0) return;
    MOE_CHECK(map != MAP_FAILED, "cannot map '", file, "' (", st.st_size,
              " bytes): ", std::strerror(error));
    image = static_cast<const std::byte*>(map);
    image_size = static_cast<size_t>(st.st_size);
    mapped = true;
  }

  const std::byte* data(const SafetensorsTensor& tensor) const {
    MOE_ASSERT(tensor.offset >= 0 && tensor.size >= 0 && tensor.offset <= data_size &&
                   tensor.size <= data_size - tensor.offset,
               "tensor '", tensor.name, "' is not one of '", path, "'");
    return image + data_at + tensor.offset;
  }

  void parse() {
    const std::string file = "'" + path + "': ";
    MOE_CHECK(image_size >= 8, file, "the file has ", image_size,
              " bytes; a safetensors file starts with an 8-byte header length");
    uint64_t n = 0;
    std::memcpy(&n, image, 8);
    MOE_CHECK(n <= kMaxHeaderBytes, file, "the header length (bytes 0-7) is ", n,
              ", more than the limit of ", kMaxHeaderBytes, " bytes (not a safetensors file?)");
    MOE_CHECK(n <= image_size - 8, file, "the header length (bytes 0-7) is ", n, ", but only ",
              image_size - 8, " bytes follow it (a truncated file?)");
    header_size = static_cast<int64_t>(n);
    data_at = 8 + header_size;
    data_size = static_cast<int64_t>(image_size) - data_at;

    const std::string_view text(reinterpret_cast<const char*>(image + 8), n);
    check_utf8(text, file + "the header is not UTF-8: header ");
    JsonParseOptions options;
    options.require_object = true;
    const JsonValue header = parse_json(text, path, options);
    for (const auto& [key, value] : std::get<JsonObject>(header.data())) {
      if (key == "__metadata__") {
        add_metadata(value, file);
      } else {
        add_tensor(key, value, file + "tensor '" + key + "': ");
      }
    }
    check_tiling(file);
  }

  void add_metadata(const JsonValue& value, const std::string& file) {
    MOE_CHECK(!has_metadata, file, "__metadata__ appears twice in the header");
    has_metadata = true;
    if (std::holds_alternative<std::nullptr_t>(value.data())) return;  // as the reference reads it
    const JsonObject* object = std::get_if<JsonObject>(&value.data());
    MOE_CHECK(object, file, "__metadata__ is ", value.kind_name(),
              ", expected an object of strings");
    for (const auto& [key, entry] : *object) {
      const std::string* text = std::get_if<std::string>(&entry.data());
      MOE_CHECK(text, file, "__metadata__ value of '", key, "' is ", entry.kind_name(),
                ", expected a string");
      MOE_CHECK(metadata.emplace(key, *text).second, file, "__metadata__ key '", key,
                "' appears twice");
    }
  }

  // where: "'file': tensor 'x': "
  void add_tensor(const std::string& name, const JsonValue& value, const std::string& where) {
    MOE_CHECK(index.emplace(name, tensors.size()).second, where,
              "the name appears twice in the header");
    const JsonObject* entry = std::get_if<JsonObject>(&value.data());
    MOE_CHECK(entry, where, "the entry is ", value.kind_name(),
              ", expected an object with dtype, shape and data_offsets");
    const auto field = [&](const char* key) -> const JsonValue& {
      const JsonValue* found = member(*entry, key);
      MOE_CHECK(found, where, "the entry has no \"", key, "\"");
      return *found;
    };
    const auto array = [&](const char* key) -> const JsonArray& {
      const JsonValue& found = field(key);
      const JsonArray* items = std::get_if<JsonArray>(&found.data());
      MOE_CHECK(items, where, key, " is ", found.kind_name(), ", expected an array");
      return *items;
    };

    SafetensorsTensor tensor;
    tensor.name = name;
    const JsonValue& dtype = field("dtype");
    const std::string* dtype_name = std::get_if<std::string>(&dtype.data());
    MOE_CHECK(dtype_name, where, "dtype is ", dtype.kind_name(), ", expected a string");
    const DTypeInfo& info = dtype_info(*dtype_name, where);
    tensor.dtype = info.name;
    tensor.moe_dtype = info.ours;

    const JsonArray& shape = array("shape");
    for (size_t i = 0; i < shape.size(); ++i)
      tensor.shape.push_back(json_integer(shape[i], where, "shape[" + std::to_string(i) + "]"));
    const auto [numel, bytes] = tensor_extent(info, tensor.shape, where);
    tensor.numel = numel;

    const JsonArray& offsets = array("data_offsets");
    MOE_CHECK(offsets.size() == 2, where, "data_offsets has ", offsets.size(),
              " elements, expected two: [begin, end]");
    const int64_t begin = json_integer(offsets[0], where, "data_offsets[0]");
    const int64_t end = json_integer(offsets[1], where, "data_offsets[1]");
    MOE_CHECK(begin >= 0 && end >= 0, where, "data_offsets [", begin, ", ", end,
              "]: offsets must not be negative");
    MOE_CHECK(begin <= end, where, "data_offsets [", begin, ", ", end, "] begin after they end");
    MOE_CHECK(end - begin == bytes, where, "shape ", shape_text(tensor.shape), " of ", info.name,
              " needs ", bytes, " bytes, data_offsets give ", end - begin);
    MOE_CHECK(end <= data_size, where, "data_offsets [", begin, ", ", end,
              "] run past the end of the data buffer (", data_size, " bytes after the ",
              8 + header_size, "-byte header)");
    tensor.offset = begin;
    tensor.size = bytes;
    tensors.push_back(std::move(tensor));
  }

  // The tensors, in data-buffer order, must cover it from 0 to its end, each starting where the
  // one before ends (zero-size tensors anywhere on those boundaries), as the reference requires.
  void check_tiling(const std::string& file) {
    const auto range = [](const SafetensorsTensor& t) {
      return std::pair(t.offset, t.offset + t.size);
    };
    std::stable_sort(tensors.begin(), tensors.end(),
                     [&](const auto& a, const auto& b) { return range(a) < range(b); });
    int64_t covered = 0;
    const SafetensorsTensor* last = nullptr;  // the last one with bytes
    for (const SafetensorsTensor& t : tensors) {
      MOE_CHECK(t.offset <= covered, file, "bytes [", covered, ", ", t.offset,
                ") of the data buffer belong to no tensor (a gap before tensor '", t.name,
                "'); tensors must cover the data buffer without holes");
      if (t.offset < covered) {
        MOE_ASSERT(last);
        MOE_THROW(InputError, file, "tensor '", t.name, "' (data_offsets [", t.offset, ", ",
                  t.offset + t.size, "]) overlaps tensor '", last->name, "' (data_offsets [",
                  last->offset, ", ", last->offset + last->size, "])");
      }
      covered = t.offset + t.size;
      if (t.size > 0) last = &t;
    }
    MOE_CHECK(covered == data_size, file, "bytes [", covered, ", ", data_size,
              ") at the end of the data buffer belong to no tensor",
              last ? " (after tensor '" + last->name + "')" : std::string());
    for (size_t i = 0; i < tensors.size(); ++i) index[tensors[i].name] = i;
  }

  template <typename Out>
  void read(const SafetensorsTensor& tensor, Out* out, const char* function) const {
    const std::byte* from = data(tensor);
    const bool is_float = visit_float(tensor.moe_dtype, [&](auto type) {
      using Stored = decltype(type);
      if constexpr (std::is_same_v<Stored, Out>) {
        if (tensor.size > 0) std::memcpy(out, from, static_cast<size_t>(tensor.size));
      } else {
        for (int64_t i = 0; i < tensor.numel; ++i) {
          Stored value;
          std::memcpy(&value, from + i * static_cast<int64_t>(sizeof(Stored)), sizeof value);
          out[i] = widen<Out>(value);
        }
      }
    });
    MOE_CHECK(is_float, "'", path, "': tensor '", tensor.name, "' is ", tensor.dtype, "; ",
              function, " reads F32, F16, BF16 and F64");
  }
};

SafetensorsFile::SafetensorsFile(const std::string& path) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->map(path);
  impl_->parse();
}

SafetensorsFile::SafetensorsFile(std::span<const std::byte> image, const std::string& name)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = name;
  impl_->image = image.data();
  impl_->image_size = image.size();
  impl_->parse();
}

SafetensorsFile::~SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;

const std::string& SafetensorsFile::path() const { return impl_->path; }
int64_t SafetensorsFile::header_size() const { return impl_->header_size; }
int64_t SafetensorsFile::data_size() const { return impl_->data_size; }
const std::vector<SafetensorsTensor>& SafetensorsFile::tensors() const { return impl_->tensors; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
  return impl_->metadata;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  const auto found = impl_->index.find(name);
  return found == impl_->index.end() ? nullptr : &impl_->tensors[found->second];
}

const SafetensorsTensor& SafetensorsFile::at(const std::string& name) const {
  const SafetensorsTensor* tensor = find(name);
  MOE_CHECK(tensor, "'", impl_->path, "' has no tensor '", name, "'");
  return *tensor;
}

const std::byte* SafetensorsFile::data(const SafetensorsTensor& tensor) const {
  return impl_->data(tensor);
}

void SafetensorsFile::read_f32(const SafetensorsTensor& tensor, float* out) const {
  impl_->read(tensor, out, "read_f32");
}

void SafetensorsFile::read_f64(const SafetensorsTensor& tensor, double* out) const {
  impl_->read(tensor, out, "read_f64");
}

void SafetensorsFile::release(const SafetensorsTensor& tensor) const {
  const Impl& f = *impl_;
  if (!f.mapped || tensor.size == 0) return;
  // Whole pages only; a neighbour's pages dropped with them just fault in again (the map is a
  // read-only view of the file, so nothing is lost).
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(f.data(tensor));
  const uintptr_t first = begin / page * page;
  const uintptr_t last = (begin + static_cast<uintptr_t>(tensor.size) + page - 1) / page * page;
  const int status = ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  MOE_ASSERT(status == 0, "madvise of '", f.path, "' failed: ", std::strerror(errno));
}

// ---- writer ----

struct SafetensorsWriter::Impl {
  std::string path, temp;
  std::vector<SafetensorsSpec> specs;
  std::vector<int64_t> sizes;  // bytes of each tensor
  std::unordered_map<std::string, size_t> index;
  int fd = -1;
  size_t next = 0;      // the tensor write() expects
  bool failed = false;  // a write failed: the file is incomplete
  bool finished = false;

  ~Impl() {
    if (fd >= 0) ::close(fd);
    if (!temp.empty() && !finished) ::unlink(temp.c_str());
  }

  void write_all(const void* bytes, size_t size) {
    MOE_CHECK(!failed, "'", temp, "': an earlier write failed; the file cannot be completed");
    const char* at = static_cast<const char*>(bytes);
    while (size > 0) {
      const ssize_t written = ::write(fd, at, size);
      if (written < 0 && errno == EINTR) continue;
      failed = written <= 0;
      MOE_CHECK(!failed, "cannot write '", temp,
                "': ", written < 0 ? std::strerror(errno) : "no progress");
      at += written;
      size -= static_cast<size_t>(written);
    }
  }

  std::string header(const std::map<std::string, std::string>& metadata) const {
    std::string json = "{";
    if (!metadata.empty()) {
      json += "\"__metadata__\":{";
      for (const auto& [key, value] : metadata) {
        if (json.back() != '{') json += ',';
        append_json_string(json, key);
        json += ':';
        append_json_string(json, value);
      }
      json += '}';
    }
    int64_t offset = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      if (json.size() > 1) json += ',';
      append_json_string(json, specs[i].name);
      json += ":{\"dtype\":";
      append_json_string(json, specs[i].dtype);
      json += ",\"shape\":" + shape_text(specs[i].shape) + ",\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(offset + sizes[i]) + "]}";
      offset += sizes[i];
    }
    json += '}';
    json.append((8 - json.size() % 8) % 8, ' ');
    return json;
  }
};

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<SafetensorsSpec> tensors,
                                     std::map<std::string, std::string> metadata)
    : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.path = path;
  w.specs = std::move(tensors);
  const std::string file = "'" + path + "': ";
  int64_t total = 0;
  for (const SafetensorsSpec& spec : w.specs) {
    const std::string where = file + "tensor '" + spec.name + "': ";
    MOE_CHECK(spec.name != "__metadata__", file,
              "a tensor cannot be named __metadata__ (the header's metadata key)");
    check_utf8(spec.name, where + "the name is not UTF-8: ");
    MOE_CHECK(w.index.emplace(spec.name, w.sizes.size()).second, where, "declared twice");
    const int64_t bytes = tensor_extent(dtype_info(spec.dtype, where), spec.shape, where).second;
    MOE_CHECK(!__builtin_add_overflow(total, bytes, &total) && total <= kMaxJsonInteger, file,
              "the tensors up to '", spec.name, "' take more than 2^53 bytes");
    w.sizes.push_back(bytes);
  }
  for (const auto& [key, value] : metadata) {
    check_utf8(key, file + "__metadata__ key '" + key + "' is not UTF-8: ");
    check_utf8(value, file + "__metadata__ value of '" + key + "' is not UTF-8: ");
  }
  const std::string header = w.header(metadata);
  MOE_CHECK(header.size() <= kMaxHeaderBytes, file, "the header would take ", header.size(),
            " bytes, more than the limit of ", kMaxHeaderBytes);

  w.temp = path + ".tmp";
  w.fd = ::open(w.temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w.fd < 0) {
    const int error = errno;
    w.temp.clear();  // nothing of ours to remove
    MOE_THROW(InputError, "cannot create '", path, ".tmp': ", std::strerror(error));
  }
  const uint64_t n = header.size();
  w.write_all(&n, sizeof n);
  w.write_all(header.data(), header.size());
}

SafetensorsWriter::~SafetensorsWriter() = default;
SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&&) noexcept = default;
SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&&) noexcept = default;

void SafetensorsWriter::write(const std::string& name, const void* bytes, size_t size) {
  Impl& w = *impl_;
  MOE_CHECK(!w.finished, "'", w.path, "': write('", name, "') after finish()");
  MOE_CHECK(w.next < w.specs.size(), "'", w.path, "': write('", name, "'): all ", w.specs.size(),
            " declared tensors are already written");
  const SafetensorsSpec& spec = w.specs[w.next];
  if (name != spec.name) {
    const auto declared = w.index.find(name);
    MOE_CHECK(declared != w.index.end(), "'", w.path, "': write('", name,
              "'): no such tensor was declared");
    MOE_THROW(InputError, "'", w.path, "': write('", name, "') out of order: the next tensor is '",
              spec.name, "' (tensor ", w.next, "), '", name, "' is tensor ", declared->second,
              "; tensors are written in the declared order");
  }
  const int64_t expected = w.sizes[w.next];
  MOE_CHECK(size == static_cast<size_t>(expected), "'", w.path, "': write('", name, "') got ", size,
            " bytes; shape ", shape_text(spec.shape), " of ", spec.dtype, " needs ", expected);
  w.write_all(bytes, size);
  ++w.next;
}

void SafetensorsWriter::finish() {
  Impl& w = *impl_;
  MOE_CHECK(!w.finished, "'", w.path, "': finish() called twice");
  MOE_CHECK(!w.failed, "'", w.temp, "': an earlier write failed; the file cannot be completed");
  MOE_CHECK(w.next == w.specs.size(), "'", w.path, "': finish() after ", w.next, " of ",
            w.specs.size(), " tensors; the next, '",
            w.next < w.specs.size() ? w.specs[w.next].name : "", "', was never written");
  MOE_CHECK(::fsync(w.fd) == 0, "cannot fsync '", w.temp, "': ", std::strerror(errno));
  const int status = ::close(w.fd);
  w.fd = -1;
  MOE_CHECK(status == 0, "cannot write '", w.temp, "': ", std::strerror(errno));
  MOE_CHECK(std::rename(w.temp.c_str(), w.path.c_str()) == 0, "cannot rename '", w.temp, "' to '",
            w.path, "': ", std::strerror(errno));
  w.finished = true;
  // The rename itself is durable once the directory is synced (best effort: some filesystems
  // refuse to open directories).
  std::string dir = std::filesystem::path(w.path).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

std::vector<std::byte> encode(const float* values, int64_t n, const std::string& dtype) {
  MOE_CHECK(n >= 0, "encode(): ", n, " values");
  const DTypeInfo& info = dtype_info(dtype, "encode(): ");
  MOE_CHECK(info.ours && is_floating(*info.ours), "encode(): cannot store floats as ", dtype,
            " (F32, F64, BF16 or F16)");
  std::vector<std::byte> bytes(static_cast<size_t>(n) * static_cast<size_t>(info.bits / 8));
  visit_float(info.ours, [&](auto type) {
    using Stored = decltype(type);
    for (int64_t i = 0; i < n; ++i) {
      const Stored value = narrow<Stored>(values[i]);
      std::memcpy(bytes.data() + i * static_cast<int64_t>(sizeof(Stored)), &value, sizeof value);
    }
  });
  return bytes;
}

}  // namespace moe
