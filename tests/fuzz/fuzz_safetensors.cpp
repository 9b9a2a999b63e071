// libFuzzer target for the safetensors reader (DESIGN.md §3 "Errors": bad input never crashes).
// Each input is parsed as a whole file from memory; it must either throw InputError or give
// tensors that tile the data buffer, whose float ones then read; a file it accepts is written
// again with SafetensorsWriter, which must take it, and reads back the same. A crash, a sanitizer
// report or any other exception is a finding. Built and run by run_fuzz.sh.
//
// The seeds in corpus_safetensors/ are the Python-written fixture (tests/fixtures/safetensors),
// small files of our writer, and a few malformed ones (gap, overlap, bad sizes, bad JSON).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "core/error.h"

namespace {

// Where accepted inputs are written again: one file (and the writer's .tmp), removed at exit.
std::string g_path;

void remove_files() {
  std::filesystem::remove(g_path);
  std::filesystem::remove(g_path + ".tmp");
}

const std::string& path() {
  if (g_path.empty()) {
    const std::string name = "moe_fuzz_safetensors_" + std::to_string(::getpid());
    g_path = (std::filesystem::temp_directory_path() / name).string();
    std::atexit(remove_files);
  }
  return g_path;
}

void require(bool ok) {
  if (!ok) std::abort();
}

// Writes file again and checks that the copy reads back with the same tensors and bytes.
void rewrite(const moe::SafetensorsFile& file) {
  std::vector<moe::SafetensorsSpec> specs;
  for (const auto& t : file.tensors()) specs.push_back({t.name, t.dtype, t.shape});
  {
    moe::SafetensorsWriter writer(path(), specs, file.metadata());
    for (const auto& t : file.tensors())
      writer.write(t.name, file.data(t), static_cast<size_t>(t.size));
    writer.finish();
  }
  const moe::SafetensorsFile copy(path());
  require(copy.metadata() == file.metadata() && copy.data_size() == file.data_size() &&
          copy.tensors().size() == file.tensors().size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const auto &a = file.tensors()[i], &b = copy.tensors()[i];
    require(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape && a.offset == b.offset &&
            a.size == b.size);
    require(a.size == 0 ||
            std::memcmp(file.data(a), copy.data(b), static_cast<size_t>(a.size)) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<moe::SafetensorsFile> file;
  try {
    file.emplace(std::span(reinterpret_cast<const std::byte*>(data), size), "input");
  } catch (const moe::InputError&) {
    return 0;
  }
  // What validation promises: the tensors tile the data buffer in order, sizes match shapes, and
  // the float ones read. The writer must take what the reader took (an InputError there is a
  // finding: nothing catches it).
  int64_t covered = 0;
  std::vector<double> values;
  for (const auto& t : file->tensors()) {
    require(t.offset == covered && t.size >= 0 && file->find(t.name) == &t);
    covered += t.size;
    if (!t.moe_dtype || !moe::is_floating(*t.moe_dtype)) continue;
    values.resize(static_cast<size_t>(t.numel));
    file->read_f64(t, values.data());
  }
  require(covered == file->data_size());
  if (file->data_size() <= (1 << 20)) rewrite(*file);
  return 0;
}
