// libFuzzer target for the .idx reader (DESIGN.md §3 "Errors": bad input never crashes). Each
// input is written as PREFIX.idx beside a fixed 1 KiB PREFIX.bin; opening it must either succeed,
// and then every sequence reads and check_vocab runs, or throw InputError. A crash, a sanitizer
// report or any other exception is a finding. Built and run by run_fuzz.sh.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/indexed_dataset.h"

namespace {

std::filesystem::path g_dir;

void remove_dir() { std::filesystem::remove_all(g_dir); }

// The dataset prefix, with its .bin written once: bytes 0, 37, 74, ... (mod 256), so every dtype
// sees small ids, large ones, negatives and non-integral floats.
const std::string& prefix() {
  static const std::string path = [] {
    g_dir = std::filesystem::temp_directory_path() /
            ("moe_fuzz_indexed_dataset_" + std::to_string(::getpid()));
    std::filesystem::create_directories(g_dir);
    std::atexit(remove_dir);
    const std::string p = (g_dir / "data").string();
    std::ofstream bin(p + ".bin", std::ios::binary);
    for (int i = 0; i < 1024; ++i) bin.put(static_cast<char>(i * 37 % 256));
    return p;
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream idx(prefix() + ".idx", std::ios::binary | std::ios::trunc);
    idx.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const moe::IndexedDataset dataset(prefix());
    std::vector<int32_t> tokens;
    for (int64_t s = 0; s < dataset.num_sequences(); ++s) {
      tokens.resize(static_cast<size_t>(dataset.sequence_length(s)));
      try {
        dataset.read(s, 0, static_cast<int64_t>(tokens.size()), tokens.data());
      } catch (const moe::InputError&) {  // a stored value that is no int32 id
      }
    }
    // What validation promises: document indices from 0 to num_sequences, never decreasing.
    const auto starts = dataset.document_indices();
    if (starts.empty() || starts.front() != 0 || starts.back() != dataset.num_sequences() ||
        !std::is_sorted(starts.begin(), starts.end()))
      std::abort();
    dataset.check_vocab(300);
  } catch (const moe::InputError&) {
  }
  return 0;
}
