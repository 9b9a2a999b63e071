#include "data/packed_dataset.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace moe {

std::vector<int64_t> random_permutation(int64_t n, uint64_t seed, uint64_t stream,
                                        uint64_t counter) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) {
    const auto r = philox4x32(seed, stream, counter + static_cast<uint64_t>(i));
    const uint64_t bits = (uint64_t{r[0]} << 32) | r[1];
    std::swap(order[i], order[bits % static_cast<uint64_t>(i + 1)]);
  }
  return order;
}

PackedDataset::PackedDataset(std::shared_ptr<const IndexedDataset> data, int64_t first,
                             int64_t count, int64_t seq_len, bool shuffle, uint64_t seed,
                             uint64_t stream)
    : data_(std::move(data)),
      first_(first),
      count_(count),
      seq_len_(seq_len),
      shuffle_(shuffle),
      seed_(seed),
      stream_(stream) {
  MOE_ASSERT(first >= 0 && count >= 0 && first + count <= data_->num_sequences(), "documents [",
             first, ", ", first + count, ") of ", data_->num_sequences());
  for (int64_t s = first; s < first + count; ++s) num_tokens_ += data_->sequence_length(s);
  samples_per_epoch_ = num_tokens_ > 0 ? (num_tokens_ - 1) / seq_len : 0;
  MOE_CHECK(samples_per_epoch_ > 0, data_->prefix(), ": ", count, " documents hold ", num_tokens_,
            " tokens, fewer than one sample of data.seq_len + 1 = ", seq_len + 1);
}

void PackedDataset::build_epoch(int64_t epoch) const {
  if (epoch == cached_epoch_) return;
  // Counters: documents of epoch e use [2e * 2^32, ...), samples [(2e + 1) * 2^32, ...).
  const uint64_t base = static_cast<uint64_t>(epoch) << 33;
  if (shuffle_) {
    document_order_ = random_permutation(count_, seed_, stream_, base);
  } else {
    document_order_.resize(static_cast<size_t>(count_));
    std::iota(document_order_.begin(), document_order_.end(), int64_t{0});
  }
  starts_.resize(static_cast<size_t>(count_));
  int64_t offset = 0;
  for (int64_t d = 0; d < count_; ++d) {
    document_order_[d] += first_;
    starts_[d] = offset;
    offset += data_->sequence_length(document_order_[d]);
  }
  sample_order_ =
      shuffle_ ? random_permutation(samples_per_epoch_, seed_, stream_, base + (uint64_t{1} << 32))
               : std::vector<int64_t>{};
  cached_epoch_ = epoch;
}

void PackedDataset::sample(int64_t index, int32_t* out) const {
  MOE_ASSERT(index >= 0, "negative sample index ", index);
  build_epoch(index / samples_per_epoch_);
  int64_t j = index % samples_per_epoch_;
  if (shuffle_) j = sample_order_[j];
  int64_t position = j * seq_len_, remaining = seq_len_ + 1;
  auto doc = std::upper_bound(starts_.begin(), starts_.end(), position) - starts_.begin() - 1;
  while (remaining > 0) {
    const int64_t sequence = document_order_[doc];
    const int64_t offset = position - starts_[doc];
    const int64_t take = std::min(remaining, data_->sequence_length(sequence) - offset);
    data_->read(sequence, offset, take, out);
    out += take;
    position += take;
    remaining -= take;
    ++doc;
  }
}

}  // namespace moe
