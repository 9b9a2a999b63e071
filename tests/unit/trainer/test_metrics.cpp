// Metrics JSONL: the exact text of every value type, doubles that read back to the same bits
// (including random bit patterns), NaN/Inf as null, string escapes, and files: every line parses
// back as JSON while the writer is still open (flushed), truncate and append modes, the disabled
// writer, and errors that name the path.
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "tests/support/error_message.h"
#include "trainer/metrics.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

// A JSON value of the kinds a metrics line holds. Numbers keep their text, so tests can check both
// the spelling and, through strtod, the value.
struct Json {
  enum class Kind { null, number, string, array } kind = Kind::null;
  std::string text;  // a number as written, or a decoded string
  std::vector<Json> items;
};
using JsonObject = std::vector<std::pair<std::string, Json>>;

// A strict parser of one JSON object whose values are null, numbers, strings or flat arrays; throws
// std::runtime_error naming the offset of anything else.
class LineParser {
 public:
  explicit LineParser(std::string_view text) : s_(text) {}

  JsonObject object() {
    JsonObject fields;
    expect('{');
    if (!consume('}')) {
      do {
        std::string key = string();
        expect(':');
        fields.emplace_back(std::move(key), value());
      } while (consume(','));
      expect('}');
    }
    skip_space();
    if (i_ != s_.size()) fail("trailing text");
    return fields;
  }

 private:
  Json value() {
    skip_space();
    Json v;
    if (s_.substr(i_, 4) == "null") {
      i_ += 4;
    } else if (peek() == '"') {
      v.kind = Json::Kind::string;
      v.text = string();
    } else if (consume('[')) {
      v.kind = Json::Kind::array;
      if (!consume(']')) {
        do v.items.push_back(value());
        while (consume(','));
        expect(']');
      }
    } else {
      v.kind = Json::Kind::number;
      v.text = number();
    }
    return v;
  }

  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  std::string number() {
    const size_t start = i_;
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (!digits()) {
      fail("expected a value");
    }
    if (peek() == '.' && (++i_, !digits())) fail("expected digits after '.'");
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!digits()) fail("expected an exponent");
    }
    return std::string(s_.substr(start, i_ - start));
  }

  std::string string() {
    skip_space();
    expect('"');
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char ch = s_[i_++];
      if (ch == '"') return out;
      if (static_cast<unsigned char>(ch) < 0x20) fail("raw control character in a string");
      if (ch != '\\') {
        out += ch;
        continue;
      }
      const char esc = i_ < s_.size() ? s_[i_++] : '\0';
      switch (esc) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          const unsigned code = std::stoul(std::string(s_.substr(i_, 4)), nullptr, 16);
          if (i_ + 4 > s_.size() || code >= 0x80) fail("\\u escape outside ASCII");
          out += static_cast<char>(code);
          i_ += 4;
          break;
        }
        default:
          fail("unknown escape");
      }
    }
  }

  bool digits() {
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > start;
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool consume(char ch) {
    skip_space();
    if (peek() != ch) return false;
    ++i_;
    return true;
  }
  void expect(char ch) {
    if (!consume(ch)) fail(std::string("expected '") + ch + "'");
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(what + " at offset " + std::to_string(i_) + " of: " + std::string(s_));
  }

  std::string_view s_;
  size_t i_ = 0;
};

JsonObject parse(const std::string& line) { return LineParser(line).object(); }

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A fresh directory per test, removed afterwards.
class MetricsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("moe_metrics_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST(MetricsLine, ExactTextOfEveryValueType) {
  MetricRecord r;
  r.add("step", 10)
      .add("tokens", int64_t{1} << 40)
      .add("loss", 2.5)
      .add("lr", 3e-4)
      .add("kind", "train")
      .add("phase", std::string("warmup"))
      .add("load.layer0", std::vector<int64_t>{3, 0, 5})
      .add("frac", std::vector<double>{0.25, 1.0, 0.125});
  EXPECT_EQ(to_json_line(r),
            "{\"step\": 10, \"tokens\": 1099511627776, \"loss\": 2.5, \"lr\": 3e-04, "
            "\"kind\": \"train\", \"phase\": \"warmup\", \"load.layer0\": [3,0,5], "
            "\"frac\": [0.25,1.0,0.125]}");
  EXPECT_EQ(to_json_line(MetricRecord{}), "{}");
  EXPECT_EQ(to_json_line(MetricRecord().add("empty", std::vector<double>{})), "{\"empty\": []}");
}

TEST(MetricsLine, DoublesKeepAPointAndIntegersDoNot) {
  EXPECT_EQ(to_json_line(MetricRecord().add("x", 3.0)), "{\"x\": 3.0}");
  EXPECT_EQ(to_json_line(MetricRecord().add("x", -0.0)), "{\"x\": -0.0}");
  EXPECT_EQ(to_json_line(MetricRecord().add("x", 1e20)), "{\"x\": 1e+20}");
  EXPECT_EQ(to_json_line(MetricRecord().add("x", 3)), "{\"x\": 3}");
  EXPECT_EQ(to_json_line(MetricRecord().add("x", size_t{7})), "{\"x\": 7}");
  EXPECT_EQ(to_json_line(MetricRecord().add("min", std::numeric_limits<int64_t>::min())),
            "{\"min\": -9223372036854775808}");
  EXPECT_EQ(to_json_line(MetricRecord().add("max", std::numeric_limits<int64_t>::max())),
            "{\"max\": 9223372036854775807}");
}

TEST(MetricsLine, NonFiniteNumbersAreNull) {
  const double inf = std::numeric_limits<double>::infinity();
  MetricRecord r;
  r.add("nan", std::nan("")).add("inf", inf).add("list", std::vector<double>{1.5, -inf, NAN});
  const std::string line = to_json_line(r);
  EXPECT_EQ(line, "{\"nan\": null, \"inf\": null, \"list\": [1.5,null,null]}");
  EXPECT_NO_THROW(parse(line));
}

TEST(MetricsLine, DoublesReadBackToTheSameBits) {
  std::vector<double> values = {0.1,
                                1.0 / 3.0,
                                -2.0 / 3.0,
                                M_PI,
                                1e-300,
                                5e-324,  // the smallest subnormal
                                std::numeric_limits<double>::min(),
                                std::numeric_limits<double>::max(),
                                std::numeric_limits<double>::lowest(),
                                std::numeric_limits<double>::epsilon(),
                                123456789.125,
                                9007199254740993.0};
  const Philox rng(2024, stream_id("metrics.round_trip"));
  for (uint64_t i = 0; values.size() < 2000; ++i) {
    const uint64_t bits = (uint64_t{rng.bits(2 * i)} << 32) | rng.bits(2 * i + 1);
    const double x = std::bit_cast<double>(bits);
    if (std::isfinite(x)) values.push_back(x);
  }
  MetricRecord r;
  r.add("list", values);
  for (size_t i = 0; i < 50; ++i) r.add("x" + std::to_string(i), values[i * 37]);
  const JsonObject parsed = parse(to_json_line(r));
  ASSERT_EQ(parsed.size(), 51u);
  ASSERT_EQ(parsed[0].second.items.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string& text = parsed[0].second.items[i].text;
    EXPECT_EQ(std::bit_cast<uint64_t>(std::strtod(text.c_str(), nullptr)),
              std::bit_cast<uint64_t>(values[i]))
        << values[i] << " written as " << text;
  }
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(std::strtod(parsed[i + 1].second.text.c_str(), nullptr), values[i * 37]);
  }
}

TEST(MetricsLine, StringsAreEscapedAndReadBack) {
  const std::string tricky = "say \"hi\"\\ path\\to\nnext\tcol\r\b\f\x01\x1f caf\xc3\xa9 /";
  MetricRecord r;
  r.add("sample", tricky).add("key \"quoted\"\n", 1);
  const std::string line = to_json_line(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find(R"(say \"hi\"\\ path\\to\nnext\tcol\r\b\f\u0001\u001f caf)"),
            std::string::npos)
      << line;
  const JsonObject parsed = parse(line);
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0].second.text, tricky);
  EXPECT_EQ(parsed[1].first, "key \"quoted\"\n");
}

TEST(MetricsLine, RepeatedKeyIsABug) {
  MetricRecord r;
  r.add("loss", 1.0);
  EXPECT_THROW(r.add("loss", 2.0), InternalError);
}

TEST_F(MetricsFile, EveryLineIsFlushedAndParsesBack) {
  const fs::path path = dir_ / "run" / "logs" / "metrics.jsonl";  // parents do not exist yet
  MetricsWriter writer(path.string());
  EXPECT_TRUE(writer.enabled());
  EXPECT_EQ(writer.path(), path.string());
  for (int step = 0; step < 3; ++step) {
    writer.write(MetricRecord()
                     .add("step", step)
                     .add("loss", 5.0 - step * 0.5)
                     .add("load.layer0", std::vector<int64_t>{step, 2 * step}));
    const auto lines = read_lines(path);  // read while the writer is open: written through
    ASSERT_EQ(lines.size(), static_cast<size_t>(step + 1));
    const JsonObject last = parse(lines.back());
    ASSERT_EQ(last.size(), 3u);
    EXPECT_EQ(last[0].first, "step");
    EXPECT_EQ(last[0].second.text, std::to_string(step));
    EXPECT_EQ(std::strtod(last[1].second.text.c_str(), nullptr), 5.0 - step * 0.5);
    ASSERT_EQ(last[2].second.items.size(), 2u);
    EXPECT_EQ(last[2].second.items[1].text, std::to_string(2 * step));
  }
}

TEST_F(MetricsFile, FreshRunTruncatesAndResumeAppends) {
  const std::string path = (dir_ / "metrics.jsonl").string();
  {
    MetricsWriter first(path);
    first.write(MetricRecord().add("step", 1));
    first.write(MetricRecord().add("step", 2));
  }
  {
    MetricsWriter resumed(path, 2);
    resumed.write(MetricRecord().add("step", 3));
  }
  EXPECT_EQ(read_lines(path),
            (std::vector<std::string>{"{\"step\": 1}", "{\"step\": 2}", "{\"step\": 3}"}));
  {
    MetricsWriter fresh(path);
    fresh.write(MetricRecord().add("step", 1));
  }
  EXPECT_EQ(read_lines(path), (std::vector<std::string>{"{\"step\": 1}"}));
}

// Resumed from an older checkpoint (step 2) after records up to step 4 and a line torn by a crash:
// the steps trained again are not in the file twice.
TEST_F(MetricsFile, ResumeDropsTheRecordsOfStepsTrainedAgain) {
  const std::string path = (dir_ / "metrics.jsonl").string();
  {
    MetricsWriter first(path);
    for (int step = 1; step <= 4; ++step) first.write(MetricRecord().add("step", step));
  }
  std::ofstream(path, std::ios::app) << "{\"step\": 5, \"lo";
  {
    MetricsWriter resumed(path, 2);
    resumed.write(MetricRecord().add("step", 3).add("loss", 1.5));
  }
  EXPECT_EQ(read_lines(path), (std::vector<std::string>{"{\"step\": 1}", "{\"step\": 2}",
                                                        "{\"step\": 3, \"loss\": 1.5}"}));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST_F(MetricsFile, EmptyPathDisablesTheWriter) {
  const fs::path before = fs::current_path();
  fs::current_path(dir_);  // a stray file would land here
  MetricsWriter disabled("");
  EXPECT_FALSE(disabled.enabled());
  EXPECT_NO_THROW(disabled.write(MetricRecord().add("step", 1)));
  MetricsWriter default_constructed;
  EXPECT_FALSE(default_constructed.enabled());
  EXPECT_NO_THROW(default_constructed.write(MetricRecord().add("step", 1)));
  fs::current_path(before);
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(MetricsFile, UnwritablePathsNameThePath) {
  using testing::input_error_message;
  using testing::mentions;
  const fs::path regular = dir_ / "not_a_dir";
  std::ofstream(regular) << "x";
  const std::string under_file = (regular / "metrics.jsonl").string();
  std::string message = input_error_message([&] { MetricsWriter w(under_file); });
  EXPECT_TRUE(mentions(message, "cannot create the directory of metrics file '" + under_file +
                                    "' (log.metrics_file)"));

  message = input_error_message([&] { MetricsWriter w(dir_.string()); });
  EXPECT_TRUE(mentions(message, "metrics file '" + dir_.string() +
                                    "' (log.metrics_file) is a "
                                    "directory"));
}

TEST(MetricsWriter, WriteFailureNamesThePath) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  MetricsWriter full("/dev/full");  // opens fine, every write fails with ENOSPC
  const std::string message =
      testing::input_error_message([&] { full.write(MetricRecord().add("step", 1)); });
  EXPECT_TRUE(testing::mentions(message, "cannot write metrics file '/dev/full': "));
  EXPECT_TRUE(testing::mentions(message, std::strerror(ENOSPC)));
}

}  // namespace
}  // namespace moe
