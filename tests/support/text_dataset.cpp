#include "tests/support/text_dataset.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "data/byte_tokenizer.h"
#include "data/indexed_dataset.h"

namespace moe::testing {

std::string write_text_dataset(const std::string& text_file, const std::string& prefix) {
  std::filesystem::create_directories(std::filesystem::path(prefix).parent_path());
  std::ifstream in(text_file);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  IndexedDatasetWriter writer(prefix, TokenDType::u16);
  const ByteTokenizer tokenizer;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find("\n\n", start);
    end = end == std::string::npos ? text.size() : end + 2;
    std::vector<int32_t> tokens =
        tokenizer.encode(std::string_view(text).substr(start, end - start));
    tokens.push_back(ByteTokenizer::kEod);
    writer.add_document(tokens);
    start = end;
  }
  writer.finish();
  return prefix;
}

}  // namespace moe::testing
