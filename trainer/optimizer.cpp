#include "trainer/optimizer.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"

namespace moe {

AdamW::AdamW(ParameterStore& store, const TrainConfig& train, Communicator* shard_group)
    : store_(store), train_(train) {
  MOE_ASSERT(store.allocated(), "AdamW needs the parameters allocated");
  const int64_t n = store.numel();
  hi_ = n;
  if (shard_group && shard_group->size() > 1) {
    shard_group_ = shard_group;
    shard_ = (n + shard_group->size() - 1) / shard_group->size();
    lo_ = std::min(n, shard_group->rank() * shard_);
    hi_ = std::min(n, lo_ + shard_);
  }
  m_ = Tensor::zeros({hi_ - lo_}, store.dtype());
  v_ = Tensor::zeros({hi_ - lo_}, store.dtype());
}

Tensor AdamW::owned_gradient(Stream& stream) {
  if (!shard_group_) return store_.grads();
  const int ranks = shard_group_->size();
  Tensor padded = Tensor::zeros({shard_ * ranks}, store_.dtype());
  Tensor head = padded.narrow(0, store_.numel());
  ops::copy(store_.grads(), head, stream);
  Tensor mine = Tensor::empty({shard_}, store_.dtype());
  shard_group_->reduce_scatter(padded, mine, ReduceOp::sum, stream);
  ops::scale(mine, 1.0f / static_cast<float>(ranks), stream);
  return mine.narrow(0, hi_ - lo_);
}

double AdamW::step(double lr, Stream& stream) {
  Tensor grad = owned_gradient(stream);
  Tensor squares = Tensor::from_vector<double>({1}, {ops::sum_of_squares(grad, stream)});
  if (shard_group_) shard_group_->all_reduce(squares, ReduceOp::sum, stream);
  const double norm = std::sqrt(squares.data<double>()[0]);
  if (train_.grad_clip > 0 && norm > train_.grad_clip && std::isfinite(norm))
    ops::scale(grad, static_cast<float>(train_.grad_clip / (norm + 1e-6)), stream);
  ++step_;
  ops::AdamWOptions options{static_cast<float>(lr), static_cast<float>(train_.beta1),
                            static_cast<float>(train_.beta2), static_cast<float>(train_.eps), 0.0f};
  Tensor values = store_.values();
  int64_t offset = 0;
  for (const Parameter& p : store_.parameters()) {
    const int64_t begin = std::max(offset, lo_), end = std::min(offset + p.shape.numel(), hi_);
    offset += p.shape.numel();
    if (begin >= end) continue;
    Tensor value = values.narrow(begin, end - begin), m = m_.narrow(begin - lo_, end - begin),
           v = v_.narrow(begin - lo_, end - begin);
    options.weight_decay = p.weight_decay ? static_cast<float>(train_.weight_decay) : 0.0f;
    ops::adamw_step(value, grad.narrow(begin - lo_, end - begin), m, v, options, step_, stream);
  }
  if (shard_group_) {
    Tensor gathered = Tensor::empty({shard_ * shard_group_->size()}, store_.dtype());
    Tensor mine = Tensor::zeros({shard_}, store_.dtype());
    Tensor owned = mine.narrow(0, hi_ - lo_);
    ops::copy(values.narrow(lo_, hi_ - lo_), owned, stream);
    shard_group_->all_gather(mine, gathered, stream);
    ops::copy(gathered.narrow(0, store_.numel()), values, stream);
  }
  return norm;
}

}  // namespace moe
