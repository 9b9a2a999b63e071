#include "data/token_loader.h"

#include "core/error.h"
#include "data/byte_text_dataset.h"

namespace moe {

std::unique_ptr<TokenLoader> make_token_loader(const DataConfig& data) {
  MOE_CHECK(data.tokenizer == "byte", "unknown data.tokenizer '", data.tokenizer,
            "'; expected: byte");
  return std::make_unique<ByteTextDataset>(data);
}

}  // namespace moe
