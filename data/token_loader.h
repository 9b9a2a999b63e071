// The token loader the trainer reads batches from (DESIGN.md §2 data/). An interface, because the
// byte-level text loader of this milestone will be joined by the indexed (.bin/.idx), blended and
// sharded pipeline; the trainer only ever sees this.
//
// Decisions:
// - Batches are plain host vectors of token ids, row-major [batch, seq_len]; the trainer copies
//   them into tensors on its device. targets[b, t] is the token after inputs[b, t].
// - Training batches come from a position: the number of sequences drawn so far. Sequence i of
//   the stream is a pure function of (seed, i), so a run resumes by restoring the position, and a
//   different batch size after resuming still continues the same stream of sequences.
// - Validation batches are addressed by index and are the same on every call, so every evaluation
//   of a run (and of different runs on the same data) scores the same tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "trainer/config.h"

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

  // The next `batch` training sequences; advances train_position() by `batch`.
  virtual TokenBatch next_train_batch(int64_t batch) = 0;
  // Sequences drawn so far, and setting it (resume).
  virtual int64_t train_position() const = 0;
  virtual void set_train_position(int64_t sequences) = 0;

  // Validation batch `index` of `batch` sequences: always the same tokens. Throws InputError when
  // index >= num_val_batches(batch).
  virtual TokenBatch val_batch(int64_t index, int64_t batch) const = 0;
  virtual int64_t num_val_batches(int64_t batch) const = 0;

  virtual int vocab_size() const = 0;
  virtual int64_t seq_len() const = 0;
  // Text of token ids, for printing samples.
  virtual std::string decode(std::span<const int32_t> tokens) const = 0;
};

// The loader for data.path with data.tokenizer, data.seq_len, data.val_fraction and data.seed.
std::unique_ptr<TokenLoader> make_token_loader(const DataConfig& data);

}  // namespace moe
