#include "trainer/optimizer.h"

#include "kernels/ops.h"

namespace moe {

AdamW::AdamW(ParameterStore& store, const TrainConfig& train)
    : store_(store),
      train_(train),
      m_(Tensor::zeros(store.values().shape(), store.dtype())),
      v_(Tensor::zeros(store.values().shape(), store.dtype())) {
  MOE_ASSERT(store.allocated(), "AdamW needs the parameters allocated");
}

double AdamW::step(double lr, Stream& stream) {
  const double norm = ops::clip_grad_norm({store_.grads()}, train_.grad_clip, stream);
  ++step_;
  ops::AdamWOptions options{static_cast<float>(lr), static_cast<float>(train_.beta1),
                            static_cast<float>(train_.beta2), static_cast<float>(train_.eps), 0.0f};
  int64_t offset = 0;
  for (Parameter& p : store_.parameters()) {
    const int64_t n = p.shape.numel();
    Tensor m = m_.narrow(offset, n), v = v_.narrow(offset, n);
    Tensor value = p.value.view({n});
    options.weight_decay = p.weight_decay ? static_cast<float>(train_.weight_decay) : 0.0f;
    ops::adamw_step(value, p.grad.view({n}), m, v, options, step_, stream);
    offset += n;
  }
  return norm;
}

}  // namespace moe
