// Fixed-length training samples packed across the documents of one indexed dataset, as
// Megatron-LM's GPTDataset does: the documents are concatenated (each already ends with EOD) and
// sample j of an epoch is tokens [j * seq_len, j * seq_len + seq_len + 1) of that stream, so
// consecutive samples share one token (the last target of one is the first input of the next).
//
// Decisions:
// - Epochs: sample index i belongs to epoch i / samples_per_epoch. With shuffling, each epoch has
//   its own document order and its own sample order, both Fisher-Yates permutations drawn from
//   Philox(seed, stream) with the epoch in the counter, so sample i is a pure function of
//   (dataset, seed, i): resuming needs only the number of samples consumed.
// - The trailing partial sample of an epoch is dropped.
// - Only the current epoch's orders are cached (O(documents + samples) integers); reads go through
//   the memory-mapped dataset.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/indexed_dataset.h"

namespace moe {

class PackedDataset {
 public:
  // Uses sequences [first, first + count) of data as the documents.
  PackedDataset(std::shared_ptr<const IndexedDataset> data, int64_t first, int64_t count,
                int64_t seq_len, bool shuffle, uint64_t seed, uint64_t stream);

  int64_t samples_per_epoch() const { return samples_per_epoch_; }
  int64_t num_tokens() const { return num_tokens_; }
  // Writes seq_len + 1 tokens of sample `index` (any index >= 0) to out.
  void sample(int64_t index, int32_t* out) const;

 private:
  void build_epoch(int64_t epoch) const;

  std::shared_ptr<const IndexedDataset> data_;
  int64_t first_, count_, seq_len_;
  bool shuffle_;
  uint64_t seed_, stream_;
  int64_t num_tokens_ = 0, samples_per_epoch_ = 0;

  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> document_order_;  // sequence indices in this epoch's order
  mutable std::vector<int64_t> starts_;          // token offset of each document in the stream
  mutable std::vector<int64_t> sample_order_;    // empty when not shuffling
};

// A uniformly random permutation of [0, n) from Philox(seed, stream), counters from `counter`.
std::vector<int64_t> random_permutation(int64_t n, uint64_t seed, uint64_t stream,
                                        uint64_t counter);

}  // namespace moe
