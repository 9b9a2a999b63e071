#include "data/tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "data/bpe_tokenizer.h"
#include "data/byte_tokenizer.h"

namespace moe {

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec) {
  namespace fs = std::filesystem;
  if (spec == "byte") return std::make_unique<ByteTokenizer>();
  const fs::path path(spec);
  if (fs::is_regular_file(path)) return BpeTokenizer::from_tokenizer_json(spec);
  if (fs::is_directory(path)) {
    if (fs::is_regular_file(path / "tokenizer.json"))
      return BpeTokenizer::from_tokenizer_json((path / "tokenizer.json").string());
    if (fs::is_regular_file(path / "vocab.json") && fs::is_regular_file(path / "merges.txt"))
      return BpeTokenizer::from_vocab_and_merges((path / "vocab.json").string(),
                                                 (path / "merges.txt").string());
    MOE_THROW(InputError, "tokenizer directory '", spec,
              "' holds neither tokenizer.json nor vocab.json + merges.txt");
  }
  MOE_THROW(InputError, "unknown tokenizer '", spec,
            "': expected byte, a tokenizer.json file, or a directory with tokenizer.json or "
            "vocab.json + merges.txt");
}

}  // namespace moe
