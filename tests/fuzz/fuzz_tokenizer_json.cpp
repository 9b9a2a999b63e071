// libFuzzer target for the tokenizer loader (DESIGN.md §3 "Errors": bad input never crashes). Each
// input is written as tokenizer.json; loading it must either succeed, and then encoding and
// decoding a fixed text work and stay inside the vocabulary, or throw InputError. A crash, a
// sanitizer report or any other exception is a finding. Built and run by run_fuzz.sh.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/tokenizer.h"

namespace {

std::filesystem::path g_dir;

void remove_dir() { std::filesystem::remove_all(g_dir); }

const std::string& path() {
  static const std::string file = [] {
    g_dir = std::filesystem::temp_directory_path() /
            ("moe_fuzz_tokenizer_json_" + std::to_string(::getpid()));
    std::filesystem::create_directories(g_dir);
    std::atexit(remove_dir);
    return (g_dir / "tokenizer.json").string();
  }();
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const std::unique_ptr<moe::Tokenizer> tokenizer = moe::make_tokenizer(path());
    const std::string text =
        "In the beginning God created the heaven and the earth. 42\n\t\xC3\xA9";
    const std::vector<int32_t> ids = tokenizer->encode(text);
    for (int32_t id : ids)
      if (id < 0 || id >= tokenizer->vocab_size()) std::abort();
    if (tokenizer->eod_id() < 0 || tokenizer->eod_id() >= tokenizer->vocab_size()) std::abort();
    tokenizer->decode(ids);
  } catch (const moe::InputError&) {
  }
  return 0;
}
