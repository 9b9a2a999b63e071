// The token loader the trainer reads batches from (DESIGN.md §2 data/): training batches from a
// blend of indexed datasets, each data-parallel rank its own slice, and named validation sets.
//
// Decisions:
// - Batches are plain host vectors of token ids, row-major [batch, seq_len]; the trainer copies
//   them into tensors on its device. targets[b, t] is the token after inputs[b, t].
// - The training stream is a sequence of global samples; a global batch is `batch` samples per
//   data-parallel rank, rank r taking the r-th slice. The position (global samples consumed) is
//   the whole loader state: restoring it continues the exact same stream, and the union of the
//   rank slices is the single-rank batch, step by step.
// - Validation sets are addressed by (set, batch index), always the same tokens, so every
//   evaluation of a run scores the same data; there is one set per domain.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/run_config.h"
#include "data/tokenizer.h"

namespace moe {

struct TokenBatch {
  std::vector<int32_t> inputs;   // [batch, seq_len]
  std::vector<int32_t> targets;  // [batch, seq_len], inputs shifted left by one token
  int64_t batch = 0;
  int64_t seq_len = 0;
};

class TokenLoader {
 public:
  virtual ~TokenLoader() = default;

  // This rank's `batch` samples of the next global batch; advances train_position() by
  // batch * data-parallel size.
  virtual TokenBatch next_train_batch(int64_t batch) = 0;
  virtual int64_t train_position() const = 0;
  virtual void set_train_position(int64_t samples) = 0;

  virtual int num_val_sets() const = 0;
  virtual const std::string& val_set_name(int set) const = 0;
  // Validation batch `index` of set `set`; InputError when index >= num_val_batches(set, batch).
  virtual TokenBatch val_batch(int set, int64_t index, int64_t batch) const = 0;
  virtual int64_t num_val_batches(int set, int64_t batch) const = 0;

  virtual const Tokenizer& tokenizer() const = 0;
  virtual int64_t seq_len() const = 0;
};

// What a loader is opened for. Training needs data.train. Evaluation opens only validation sets:
// those of data.valid, and no training dataset; or, when data.valid is empty, the held-out part of
// data.train's datasets (none when data.train is empty too).
enum class LoaderUse { training, evaluation };

// The loader for the config's data section, for data-parallel rank dp_rank of dp_size.
std::unique_ptr<TokenLoader> make_token_loader(const DataConfig& data, int dp_rank = 0,
                                               int dp_size = 1,
                                               LoaderUse use = LoaderUse::training);

}  // namespace moe
