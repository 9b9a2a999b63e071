#include "data/token_loader.h"

#include "data/indexed_loader.h"

namespace moe {

std::unique_ptr<TokenLoader> make_token_loader(const DataConfig& data, int dp_rank, int dp_size,
                                               LoaderUse use) {
  return std::make_unique<IndexedLoader>(data, dp_rank, dp_size, use);
}

}  // namespace moe
