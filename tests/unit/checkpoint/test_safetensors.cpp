// Safetensors: write -> read round trips over many dtypes and shapes (0-d scalars, zero-size
// tensors) with metadata, a file written by Hugging Face's Python safetensors read back and
// written again byte for byte, bf16/f16/f64 conversion on known values, every malformed file an
// InputError naming the file and the problem, the writer's order and size errors and its temporary
// file, and that streaming a file with release() keeps the resident size near one tensor.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::input_error_message;
using testing::mentions;

template <typename T>
std::vector<std::byte> as_bytes(const std::vector<T>& values) {
  std::vector<std::byte> bytes(values.size() * sizeof(T));
  if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Resident set size of this process in KiB (VmRSS).
int64_t resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}

// A header of U8 tensors: {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, ...}.
struct Span {
  std::string name;
  int64_t begin, end;
};
std::string u8_header(const std::vector<Span>& spans) {
  std::string header = "{";
  for (const Span& s : spans)
    header += (header.size() > 1 ? ", \"" : "\"") + s.name +
              "\": {\"dtype\": \"U8\", \"shape\": [" + std::to_string(s.end - s.begin) +
              "], \"data_offsets\": [" + std::to_string(s.begin) + ", " + std::to_string(s.end) +
              "]}";
  return header + "}";
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("moe_safetensors_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "model.safetensors").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A file of the given header text and data buffer; n overrides the header length field.
  void write_raw(const std::string& header, const std::string& data,
                 std::optional<uint64_t> n = std::nullopt) {
    const uint64_t length = n.value_or(header.size());
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(&length), 8);
    out << header << data;
  }
  // The open error of a file with this header and a data buffer of data_bytes zero bytes.
  std::string header_error(const std::string& header, size_t data_bytes = 0) {
    write_raw(header, std::string(data_bytes, '\0'));
    return open_error();
  }
  std::string open_error() {
    const std::string message = input_error_message([&] { SafetensorsFile file(path_); });
    EXPECT_TRUE(mentions(message, path_));
    return message;
  }

  fs::path dir_;
  std::string path_;
};

struct Case {
  SafetensorsSpec spec;
  std::vector<std::byte> bytes;
};

TEST_F(SafetensorsTest, RoundTripsDTypesShapesAndMetadata) {
  const std::vector<float> weight = {1.0f, -2.5f, 0.125f, 3e-3f, 65504.0f, -0.0f};
  const std::vector<float> bias = {1.0f, -3.0f, 0.33203125f, 1e30f};
  std::vector<Case> cases = {
      {{"layers.0.weight", "F32", {2, 3}}, encode(weight.data(), 6, "F32")},
      {{"layers.0.bias", "BF16", {4}}, encode(bias.data(), 4, "BF16")},
      {{"half", "F16", {1, 4}}, encode(bias.data(), 4, "F16")},
      {{"scalar", "F64", {}}, as_bytes(std::vector<double>{2.718281828459045})},
      {{"ids", "I64", {3}}, as_bytes(std::vector<int64_t>{-1, 0, int64_t{1} << 60})},
      {{"empty_i32", "I32", {0}}, {}},
      {{"empty_3d", "U8", {2, 0, 3}}, {}},
      {{"int8", "I8", {5}}, as_bytes(std::vector<int8_t>{-128, -1, 0, 1, 127})},
      {{"mask", "BOOL", {3}}, as_bytes(std::vector<uint8_t>{1, 0, 1})},
      {{"nibbles", "F4", {2, 2}}, as_bytes(std::vector<uint8_t>{0x12, 0x34})},
      {{"name with \"quotes\", \\ and \xc3\xbc", "U16", {1}}, as_bytes(std::vector<uint16_t>{7})},
  };
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"note", "line\nbreak, tab\t, \"quoted\", \xe2\x82\xac"}};
  std::vector<SafetensorsSpec> specs;
  for (const Case& c : cases) specs.push_back(c.spec);
  SafetensorsWriter writer(path_, specs, metadata);
  for (const Case& c : cases) writer.write(c.spec.name, c.bytes.data(), c.bytes.size());
  EXPECT_FALSE(fs::exists(path_));  // only after finish()
  writer.finish();
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));

  const SafetensorsFile file(path_);
  EXPECT_EQ(file.metadata(), metadata);
  EXPECT_EQ(file.header_size() % 8, 0);
  ASSERT_EQ(file.tensors().size(), cases.size());
  int64_t offset = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const SafetensorsTensor& t = file.tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, cases[i].spec.name);
    EXPECT_EQ(file.find(t.name), &t);
    EXPECT_EQ(t.dtype, cases[i].spec.dtype);
    EXPECT_EQ(t.shape, cases[i].spec.shape);
    EXPECT_EQ(t.offset, offset);
    ASSERT_EQ(t.size, static_cast<int64_t>(cases[i].bytes.size()));
    if (t.size > 0) {
      EXPECT_EQ(std::memcmp(file.data(t), cases[i].bytes.data(), t.size), 0);
    }
    offset += t.size;
  }
  EXPECT_EQ(file.data_size(), offset);
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(path_)), 8 + file.header_size() + offset);

  EXPECT_EQ(file.at("scalar").numel, 1);
  EXPECT_EQ(file.at("empty_3d").numel, 0);
  EXPECT_EQ(file.at("nibbles").numel, 4);
  EXPECT_EQ(file.at("layers.0.bias").moe_dtype, DType::bf16);
  EXPECT_EQ(file.at("ids").moe_dtype, DType::i64);
  EXPECT_EQ(file.at("mask").moe_dtype, std::nullopt);
  EXPECT_EQ(file.find("absent"), nullptr);
  EXPECT_TRUE(mentions(input_error_message([&] { file.at("absent"); }), "no tensor 'absent'"));

  std::vector<float> got(6);
  file.read_f32(file.at("layers.0.weight"), got.data());
  EXPECT_EQ(got, weight);
  file.read_f32(file.at("layers.0.bias"), got.data());
  EXPECT_EQ(std::vector<float>(got.begin(), got.begin() + 3),
            std::vector<float>(bias.begin(), bias.begin() + 3));
  EXPECT_EQ(got[3], 1.0002555517425873e30f);  // 1e30 to the nearest bf16, 0x714a
  double scalar = 0;
  file.read_f64(file.at("scalar"), &scalar);
  EXPECT_EQ(scalar, 2.718281828459045);
  EXPECT_TRUE(mentions(input_error_message([&] { file.read_f32(file.at("ids"), got.data()); }),
                       "tensor 'ids' is I64; read_f32 reads F32, F16, BF16 and F64"));
  EXPECT_TRUE(mentions(input_error_message([&] { file.read_f64(file.at("mask"), &scalar); }),
                       "read_f64 reads"));

  // Moved, the file still reads.
  SafetensorsFile moved = SafetensorsFile(path_);
  SafetensorsFile other(std::move(moved));
  EXPECT_EQ(other.tensors().size(), cases.size());
}

TEST_F(SafetensorsTest, EmptyFileOfNoTensors) {
  SafetensorsWriter writer(path_, {});
  writer.finish();
  EXPECT_EQ(read_file(path_), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  const SafetensorsFile file(path_);
  EXPECT_TRUE(file.tensors().empty());
  EXPECT_TRUE(file.metadata().empty());
}

// tests/fixtures/safetensors/README.md says how the file was made.
TEST_F(SafetensorsTest, ReadsAndRewritesAFileOfPythonSafetensors) {
  const std::string fixture = std::string(MOE_SAFETENSORS_FIXTURES) + "/python.safetensors";
  const SafetensorsFile file(fixture);
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  std::vector<std::string> names;
  for (const auto& t : file.tensors()) names.push_back(t.name);
  // Python orders by dtype size, then by name: this is data-buffer order.
  EXPECT_EQ(names, (std::vector<std::string>{"ids", "scalar_f64", "weight", "bias_bf16", "half",
                                             "empty", "mask"}));

  std::vector<float> values(6);
  file.read_f32(file.at("weight"), values.data());
  EXPECT_EQ(values, (std::vector<float>{1.0f, -2.5f, 0.125f, 3e-3f, 65504.0f, -0.0f}));
  EXPECT_TRUE(std::signbit(values[5]));
  EXPECT_EQ(file.at("weight").shape, (std::vector<int64_t>{2, 3}));
  file.read_f32(file.at("bias_bf16"), values.data());
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], -3.0f);
  EXPECT_EQ(values[2], 0.33203125f);  // 0x3eaa
  EXPECT_EQ(values[3], INFINITY);
  file.read_f32(file.at("half"), values.data());
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], std::ldexp(1.0f, -24));  // the smallest subnormal
  EXPECT_EQ(values[2], -65504.0f);
  const SafetensorsTensor& pi = file.at("scalar_f64");
  EXPECT_TRUE(pi.shape.empty());
  double pi64 = 0;
  float pi32 = 0;
  file.read_f64(pi, &pi64);
  file.read_f32(pi, &pi32);
  EXPECT_EQ(pi64, 3.141592653589793);
  EXPECT_EQ(pi32, 3.14159274f);
  int64_t ids[2];
  std::memcpy(ids, file.data(file.at("ids")), sizeof ids);
  EXPECT_EQ(ids[0], -7);
  EXPECT_EQ(ids[1], int64_t{1} << 40);
  EXPECT_EQ(file.at("empty").shape, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(file.at("empty").size, 0);
  EXPECT_EQ(file.at("mask").dtype, "BOOL");
  EXPECT_EQ(std::memcmp(file.data(file.at("mask")), "\1\0\1", 3), 0);

  // Our writer, given the same tensors in the same order, writes the same bytes.
  std::vector<SafetensorsSpec> specs;
  for (const auto& t : file.tensors()) specs.push_back({t.name, t.dtype, t.shape});
  SafetensorsWriter writer(path_, specs, file.metadata());
  for (const auto& t : file.tensors()) writer.write(t.name, file.data(t), t.size);
  writer.finish();
  EXPECT_EQ(read_file(path_), read_file(fixture));
}

TEST_F(SafetensorsTest, ReadsFromMemoryLikeFromAFile) {
  const std::string fixture =
      read_file(std::string(MOE_SAFETENSORS_FIXTURES) + "/python.safetensors");
  const SafetensorsFile file(
      std::span(reinterpret_cast<const std::byte*>(fixture.data()), fixture.size()), "image");
  EXPECT_EQ(file.path(), "image");
  EXPECT_EQ(file.tensors().size(), 7u);
  std::vector<float> half(3);
  file.read_f32(file.at("half"), half.data());
  EXPECT_EQ(half[0], 1.0f);
  file.release(file.at("weight"));  // does nothing to memory that is not ours
  EXPECT_EQ(fixture.size(), 529u);
  const std::string truncated = fixture.substr(0, 100);
  EXPECT_TRUE(mentions(input_error_message([&] {
                         SafetensorsFile bad(
                             std::span(reinterpret_cast<const std::byte*>(truncated.data()),
                                       truncated.size()),
                             "image");
                       }),
                       "'image': the header length (bytes 0-7) is 456, but only 92 bytes follow"));
}

TEST_F(SafetensorsTest, ConvertsBf16AndF16ExactlyOnKnownValues) {
  // Ties round to even; each stored pattern reads back as the exact float it stands for.
  const float one = 1.0f;
  const std::vector<float> inputs = {
      one,
      -2.0f,
      one + std::ldexp(one, -8),       // bf16: a tie, to 1 (even); f16: exact
      one + 3 * std::ldexp(one, -8),   // bf16: a tie, up to 1 + 2^-6 (even)
      one + std::ldexp(one, -11),      // f16: a tie, to 1 (even)
      one + 3 * std::ldexp(one, -11),  // f16: a tie, up to 1 + 2^-9 (even)
      3.140625f,
      one / 3,
      65504.0f,
      std::ldexp(one, -24)};
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x3f80, 0x3f82, 0x3f80,
                                      0x3f80, 0x4049, 0x3eab, 0x4780, 0x3380};
  const std::vector<float> bf16_values = {
      one,       -2.0f,        one,      one + std::ldexp(one, -6), one, one,
      3.140625f, 0.333984375f, 65536.0f, std::ldexp(one, -24)};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x3c04, 0x3c0c, 0x3c00,
                                     0x3c02, 0x4248, 0x3555, 0x7bff, 0x0001};
  const std::vector<float> f16_values = {one,
                                         -2.0f,
                                         one + std::ldexp(one, -8),
                                         one + 3 * std::ldexp(one, -8),
                                         one,
                                         one + std::ldexp(one, -9),
                                         3.140625f,
                                         0.333251953125f,
                                         65504.0f,
                                         std::ldexp(one, -24)};
  const int64_t n = static_cast<int64_t>(inputs.size());
  EXPECT_EQ(encode(inputs.data(), n, "BF16"), as_bytes(bf16));
  EXPECT_EQ(encode(inputs.data(), n, "F16"), as_bytes(f16));
  EXPECT_EQ(encode(inputs.data(), n, "F32"), as_bytes(inputs));
  std::vector<double> doubles(inputs.begin(), inputs.end());
  EXPECT_EQ(encode(inputs.data(), n, "F64"), as_bytes(doubles));
  EXPECT_TRUE(mentions(input_error_message([&] { encode(inputs.data(), n, "I32"); }),
                       "cannot store floats as I32"));
  EXPECT_TRUE(mentions(input_error_message([&] { encode(inputs.data(), n, "F128"); }),
                       "unknown dtype 'F128'"));

  SafetensorsWriter writer(path_, {{"b", "BF16", {n}}, {"h", "F16", {n}}, {"d", "F64", {n}}});
  writer.write("b", bf16.data(), 2 * n);
  writer.write("h", f16.data(), 2 * n);
  writer.write("d", doubles.data(), 8 * n);
  writer.finish();
  const SafetensorsFile file(path_);
  std::vector<float> got(n);
  file.read_f32(file.at("b"), got.data());
  EXPECT_EQ(got, bf16_values);
  file.read_f32(file.at("h"), got.data());
  EXPECT_EQ(got, f16_values);
  file.read_f32(file.at("d"), got.data());
  EXPECT_EQ(got, inputs);
  std::vector<double> wide(n);
  file.read_f64(file.at("h"), wide.data());
  EXPECT_EQ(wide, std::vector<double>(f16_values.begin(), f16_values.end()));
}

// ---- malformed files: one problem each ----

TEST_F(SafetensorsTest, RejectsAFileShorterThanTheHeaderLength) {
  std::ofstream(path_, std::ios::binary) << "abcde";
  EXPECT_TRUE(mentions(open_error(), "the file has 5 bytes; a safetensors file starts with"));
  std::ofstream(path_, std::ios::binary | std::ios::trunc).close();
  EXPECT_TRUE(mentions(open_error(), "the file has 0 bytes"));
  EXPECT_TRUE(mentions(input_error_message([&] { SafetensorsFile file(path_ + ".absent"); }),
                       "cannot open"));
  EXPECT_TRUE(mentions(input_error_message([&] { SafetensorsFile file(dir_.string()); }),
                       "is not a regular file"));
}

TEST_F(SafetensorsTest, RejectsAHeaderLengthBeyondTheFileOrTheLimit) {
  write_raw("{}", "", 1000);
  EXPECT_TRUE(mentions(open_error(), "the header length (bytes 0-7) is 1000, but only 2 bytes"));
  write_raw("{}", "", 100'000'001);
  EXPECT_TRUE(mentions(open_error(), "is 100000001, more than the limit of 100000000 bytes"));
  write_raw("{}", "", ~uint64_t{0});
  EXPECT_TRUE(mentions(open_error(), "more than the limit"));
}

TEST_F(SafetensorsTest, RejectsAHeaderThatIsNotAJsonObject) {
  EXPECT_TRUE(mentions(header_error("{\"a\": "), "malformed JSON"));
  EXPECT_TRUE(mentions(header_error("[1, 2]"), "expected a JSON object"));
  EXPECT_TRUE(mentions(header_error("{} x"), "unexpected text after the JSON value"));
  EXPECT_TRUE(
      mentions(header_error("{\"\xff\": 1}"), "the header is not UTF-8: header byte 2 (0xff)"));
}

TEST_F(SafetensorsTest, RejectsEntriesWithMissingOrMistypedFields) {
  EXPECT_TRUE(mentions(header_error(R"({"x": 3})"),
                       "tensor 'x': the entry is a number, expected an object"));
  EXPECT_TRUE(mentions(header_error(R"({"x": {"shape": [], "data_offsets": [0, 4]}})", 4),
                       "tensor 'x': the entry has no \"dtype\""));
  EXPECT_TRUE(mentions(header_error(R"({"x": {"dtype": "F32", "data_offsets": [0, 4]}})", 4),
                       "tensor 'x': the entry has no \"shape\""));
  EXPECT_TRUE(
      mentions(header_error(R"({"x": {"dtype": "F32", "shape": []}})", 4), "no \"data_offsets\""));
  EXPECT_TRUE(
      mentions(header_error(R"({"x": {"dtype": 32, "shape": [], "data_offsets": [0, 4]}})", 4),
               "tensor 'x': dtype is a number, expected a string"));
  EXPECT_TRUE(
      mentions(header_error(R"({"x": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", 4),
               "tensor 'x': shape is a string, expected an array"));
  EXPECT_TRUE(mentions(
      header_error(R"({"x": {"dtype": "F32", "shape": [1, "2"], "data_offsets": [0, 4]}})", 4),
      "tensor 'x': shape[1] is a string, expected an integer"));
  EXPECT_TRUE(mentions(
      header_error(R"({"x": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4),
      "tensor 'x': shape[0] is 1.5, expected an integer"));
  EXPECT_TRUE(mentions(
      header_error(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": {"b": 0}}})", 4),
      "tensor 'x': data_offsets is an object, expected an array"));
}

TEST_F(SafetensorsTest, RejectsAnUnknownDType) {
  const std::string message =
      header_error(R"({"x": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}})", 16);
  EXPECT_TRUE(mentions(message, "tensor 'x': unknown dtype 'F128' (expected one of BOOL, F4,"));
  EXPECT_TRUE(mentions(message, "BF16"));
}

TEST_F(SafetensorsTest, RejectsNegativeDimensions) {
  EXPECT_TRUE(mentions(
      header_error(R"({"x": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 24]}})", 24),
      "tensor 'x': shape[1] is -3; dimensions must not be negative"));
}

TEST_F(SafetensorsTest, RejectsAByteCountThatOverflows) {
  EXPECT_TRUE(mentions(header_error(R"({"x": {"dtype": "F32", "shape": [9007199254740992, )"
                                    R"(9007199254740992], "data_offsets": [0, 0]}})"),
                       "tensor 'x': shape [9007199254740992,9007199254740992] of F32 has more "
                       "bytes than 64-bit sizes hold"));
  EXPECT_TRUE(mentions(header_error(R"({"x": {"dtype": "F64", "shape": [4294967296, )"
                                    R"(1073741824], "data_offsets": [0, 0]}})"),
                       "has more bytes than 64-bit sizes hold"));
  EXPECT_TRUE(mentions(header_error(R"({"x": {"dtype": "F32", "shape": [1e300], )"
                                    R"("data_offsets": [0, 4]}})",
                                    4),
                       "shape[0] is 1e+300, expected an integer of at most 2^53"));
}

TEST_F(SafetensorsTest, RejectsSubByteTensorsOfPartBytes) {
  EXPECT_TRUE(
      mentions(header_error(R"({"x": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}})", 2),
               "tensor 'x': shape [3] of F4 is 12 bits, not a whole number of bytes"));
  write_raw(R"({"x": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 3]}})",
            std::string(3, '\0'));
  EXPECT_EQ(SafetensorsFile(path_).at("x").size, 3);
}

TEST_F(SafetensorsTest, RejectsDataOffsetsThatAreNotTwoOrderedCounts) {
  const auto error = [&](const std::string& offsets) {
    return header_error(R"({"x": {"dtype": "U8", "shape": [4], "data_offsets": )" + offsets + "}}",
                        8);
  };
  EXPECT_TRUE(mentions(error("[0]"), "tensor 'x': data_offsets has 1 elements, expected two"));
  EXPECT_TRUE(mentions(error("[0, 4, 8]"), "data_offsets has 3 elements"));
  EXPECT_TRUE(mentions(error("[-4, 0]"), "data_offsets [-4, 0]: offsets must not be negative"));
  EXPECT_TRUE(mentions(error("[0, 4.5]"), "data_offsets[1] is 4.5, expected an integer"));
  EXPECT_TRUE(mentions(error("[0, null]"), "data_offsets[1] is null, expected an integer"));
  EXPECT_TRUE(mentions(error("[8, 4]"), "tensor 'x': data_offsets [8, 4] begin after they end"));
}

TEST_F(SafetensorsTest, RejectsOffsetsThatDisagreeWithTheShape) {
  EXPECT_TRUE(mentions(
      header_error(R"({"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 20),
      "tensor 'x': shape [2,3] of F32 needs 24 bytes, data_offsets give 20"));
  EXPECT_TRUE(
      mentions(header_error(R"({"s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 0]}})"),
               "tensor 's': shape [] of BF16 needs 2 bytes, data_offsets give 0"));
}

TEST_F(SafetensorsTest, RejectsOffsetsBeyondTheDataBuffer) {
  EXPECT_TRUE(
      mentions(header_error(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4),
               "tensor 'x': data_offsets [0, 8] run past the end of the data buffer (4 bytes"));
}

TEST_F(SafetensorsTest, RejectsOverlappingTensors) {
  EXPECT_TRUE(mentions(header_error(u8_header({{"a", 0, 8}, {"b", 4, 12}}), 12),
                       "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' (data_offsets [0, "
                       "8])"));
  // The same bytes twice, the second listed first.
  EXPECT_TRUE(mentions(header_error(u8_header({{"b", 0, 8}, {"a", 0, 8}}), 8),
                       "tensor 'a' (data_offsets [0, 8]) overlaps tensor 'b'"));
  // A zero-size tensor inside another.
  EXPECT_TRUE(mentions(header_error(u8_header({{"a", 0, 8}, {"z", 4, 4}}), 8),
                       "tensor 'z' (data_offsets [4, 4]) overlaps tensor 'a'"));
}

TEST_F(SafetensorsTest, RejectsHolesInTheDataBuffer) {
  EXPECT_TRUE(mentions(header_error(u8_header({{"a", 0, 4}, {"b", 8, 12}}), 12),
                       "bytes [4, 8) of the data buffer belong to no tensor (a gap before tensor "
                       "'b')"));
  EXPECT_TRUE(mentions(header_error(u8_header({{"a", 4, 8}}), 8),
                       "bytes [0, 4) of the data buffer belong to no tensor (a gap before tensor "
                       "'a')"));
  EXPECT_TRUE(mentions(header_error(u8_header({{"a", 0, 4}}), 6),
                       "bytes [4, 6) at the end of the data buffer belong to no tensor (after "
                       "tensor 'a')"));
  EXPECT_TRUE(mentions(header_error("{}", 3), "bytes [0, 3) at the end of the data buffer"));
}

TEST_F(SafetensorsTest, RejectsDuplicateNames) {
  EXPECT_TRUE(mentions(header_error(u8_header({{"a", 0, 4}, {"a", 4, 8}}), 8),
                       "tensor 'a': the name appears twice in the header"));
  EXPECT_TRUE(mentions(header_error(R"({"__metadata__": {}, "__metadata__": {}})"),
                       "__metadata__ appears twice"));
}

TEST_F(SafetensorsTest, RejectsMetadataThatIsNotStrings) {
  EXPECT_TRUE(mentions(header_error(R"({"__metadata__": {"format": "pt", "epoch": 3}})"),
                       "__metadata__ value of 'epoch' is a number, expected a string"));
  EXPECT_TRUE(mentions(header_error(R"({"__metadata__": ["pt"]})"),
                       "__metadata__ is an array, expected an object of strings"));
  EXPECT_TRUE(mentions(header_error(R"({"__metadata__": {"k": "a", "k": "b"}})"),
                       "__metadata__ key 'k' appears twice"));
}

TEST_F(SafetensorsTest, AcceptsWhatTheReferenceAccepts) {
  // Header order differs from data order, an extra member, null metadata, zero-size tensors on
  // the boundaries, trailing spaces.
  write_raw(R"({"b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4], "extra": [1]},
               "__metadata__": null,
               "z1": {"dtype": "F32", "shape": [0, 7], "data_offsets": [2, 2]},
               "a": {"dtype": "I16", "shape": [], "data_offsets": [0, 2]},
               "z2": {"dtype": "U8", "shape": [0], "data_offsets": [4, 4]}}   )",
            std::string("\1\0\2\3", 4));
  const SafetensorsFile file(path_);
  std::vector<std::string> names;
  for (const auto& t : file.tensors()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "z1", "b", "z2"}));
  EXPECT_EQ(file.find("b")->offset, 2);
  EXPECT_TRUE(file.metadata().empty());
}

// ---- the writer ----

TEST_F(SafetensorsTest, WriterRejectsWrongOrderAndSize) {
  const std::vector<float> six(6, 1.0f);
  SafetensorsWriter writer(path_, {{"a", "F32", {2, 3}}, {"b", "F32", {1}}});
  EXPECT_TRUE(mentions(input_error_message([&] { writer.write("b", six.data(), 4); }),
                       "write('b') out of order: the next tensor is 'a'"));
  EXPECT_TRUE(mentions(input_error_message([&] { writer.write("c", six.data(), 4); }),
                       "write('c'): no such tensor was declared"));
  EXPECT_TRUE(mentions(input_error_message([&] { writer.write("a", six.data(), 20); }),
                       "write('a') got 20 bytes; shape [2,3] of F32 needs 24"));
  EXPECT_TRUE(mentions(input_error_message([&] { writer.finish(); }),
                       "finish() after 0 of 2 tensors; the next, 'a', was never written"));
  writer.write("a", six.data(), 24);  // the errors above wrote nothing
  writer.write("b", six.data(), 4);
  EXPECT_TRUE(mentions(input_error_message([&] { writer.write("b", six.data(), 4); }),
                       "all 2 declared tensors are already written"));
  writer.finish();
  std::vector<float> got(6);
  SafetensorsFile(path_).read_f32(SafetensorsFile(path_).at("a"), got.data());
  EXPECT_EQ(got, six);
}

TEST_F(SafetensorsTest, WriterRejectsBadSpecs) {
  const auto error = [&](std::vector<SafetensorsSpec> specs) {
    return input_error_message([&] { SafetensorsWriter writer(path_, specs); });
  };
  EXPECT_TRUE(mentions(error({{"x", "F128", {1}}}), "tensor 'x': unknown dtype 'F128'"));
  EXPECT_TRUE(mentions(error({{"x", "F32", {2, -1}}}), "shape[1] is -1; dimensions must not"));
  EXPECT_TRUE(mentions(error({{"x", "F4", {3}}}), "12 bits, not a whole number of bytes"));
  EXPECT_TRUE(
      mentions(error({{"x", "F32", {1}}, {"x", "F32", {1}}}), "tensor 'x': declared twice"));
  EXPECT_TRUE(mentions(error({{"__metadata__", "F32", {1}}}), "cannot be named __metadata__"));
  EXPECT_TRUE(mentions(error({{"\xc3", "F32", {1}}}), "the name is not UTF-8: byte 0 (0xc3)"));
  EXPECT_TRUE(mentions(error({{"x", "U8", {int64_t{1} << 40, 1 << 14}}}), "more than 2^53 bytes"));
  EXPECT_TRUE(mentions(
      input_error_message([&] { SafetensorsWriter w((dir_ / "no" / "dir.st").string(), {}); }),
      "cannot create"));
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(SafetensorsTest, FailedWriterLeavesNoFileUnderTheFinalName) {
  const std::vector<float> values(4, 2.0f);
  {
    SafetensorsWriter writer(path_, {{"a", "F32", {4}}, {"b", "F32", {4}}});
    writer.write("a", values.data(), 16);
    EXPECT_TRUE(fs::exists(path_ + ".tmp"));
    EXPECT_FALSE(fs::exists(path_));
  }  // abandoned before b
  EXPECT_FALSE(fs::exists(path_));
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));

  // An existing file stays as it was until a writer finishes.
  {
    SafetensorsWriter writer(path_, {{"old", "F32", {4}}});
    writer.write("old", values.data(), 16);
    writer.finish();
  }
  const std::string before = read_file(path_);
  {
    SafetensorsWriter writer(path_, {{"a", "F32", {4}}});
    EXPECT_THROW(writer.finish(), InputError);
  }
  EXPECT_EQ(read_file(path_), before);
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));
  EXPECT_EQ(SafetensorsFile(path_).tensors().front().name, "old");
}

// Reading a file tensor by tensor with release() keeps the resident size near one tensor; without
// release() the pages of every tensor read stay resident (which shows the measure works).
TEST_F(SafetensorsTest, StreamingWithReleaseKeepsResidentSizeNearOneTensor) {
  constexpr int kTensors = 8;
  constexpr int64_t kFloats = 1 << 20;  // 4 MiB a tensor, 32 MiB in all
  constexpr int64_t kTensorKiB = kFloats * 4 / 1024;
  {
    std::vector<SafetensorsSpec> specs;
    for (int i = 0; i < kTensors; ++i) specs.push_back({"t" + std::to_string(i), "F32", {kFloats}});
    SafetensorsWriter writer(path_, specs);
    std::vector<float> values(kFloats);
    for (int i = 0; i < kTensors; ++i) {
      for (int64_t j = 0; j < kFloats; ++j) values[j] = static_cast<float>(i * kFloats + j);
      writer.write(specs[i].name, values.data(), values.size() * 4);
    }
    writer.finish();
  }
  const SafetensorsFile file(path_);
  std::vector<float> out(kFloats, 0.0f);  // touched before the baseline
  const int64_t baseline = resident_kib();
  ASSERT_GT(baseline, 0);
  int64_t peak = 0;
  for (const SafetensorsTensor& t : file.tensors()) {
    file.read_f32(t, out.data());
    ASSERT_EQ(out[7], static_cast<float>((t.offset / 4) + 7));
    file.release(t);
    peak = std::max(peak, resident_kib() - baseline);
  }
  EXPECT_LT(peak, 2 * kTensorKiB) << "resident size grew by " << peak << " KiB";

  for (const SafetensorsTensor& t : file.tensors()) file.read_f32(t, out.data());
  EXPECT_GT(resident_kib() - baseline, (kTensors - 2) * kTensorKiB);
  for (const SafetensorsTensor& t : file.tensors()) file.release(t);
  EXPECT_LT(resident_kib() - baseline, 2 * kTensorKiB);
}

}  // namespace
}  // namespace moe
