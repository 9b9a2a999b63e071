// See parameters.h. Names are unique: a second declaration of one name is an internal error,
// because it would make two modules share state silently.
#include "layers/parameters.h"

#include "core/rng.h"
#include "kernels/ops.h"

namespace moe {

ParameterStore::ParameterStore(DType dtype) : dtype_(dtype) {
  MOE_CHECK(dtype == DType::f32 || dtype == DType::f64,
            "ParameterStore: parameters are f32 (or f64 for gradient checks), got ",
            dtype_name(dtype));
}

Parameter& ParameterStore::add(const std::string& name, Shape shape, Init init, double init_std,
                               bool weight_decay) {
  MOE_ASSERT(!allocated(), "parameter ", name, " declared after allocate()");
  for (const Parameter& p : parameters_) MOE_ASSERT(p.name != name, "parameter ", name, " twice");
  numel_ += shape.numel();
  return parameters_.emplace_back(Parameter{name, shape, init, init_std, weight_decay, {}, {}});
}

Buffer& ParameterStore::add_buffer(const std::string& name, Shape shape) {
  for (const Buffer& b : buffers_) MOE_ASSERT(b.name != name, "buffer ", name, " twice");
  return buffers_.emplace_back(Buffer{name, Tensor::zeros(shape, dtype_)});
}

const Parameter& ParameterStore::find(const std::string& name) const {
  for (const Parameter& p : parameters_)
    if (p.name == name) return p;
  MOE_THROW(InputError, "no parameter named '", name, "'");
}

Parameter& ParameterStore::find(const std::string& name) {
  return const_cast<Parameter&>(static_cast<const ParameterStore&>(*this).find(name));
}

void ParameterStore::allocate(uint64_t seed) {
  MOE_ASSERT(!allocated(), "ParameterStore::allocate called twice");
  values_ = Tensor::zeros({numel_}, dtype_);
  grads_ = Tensor::zeros({numel_}, dtype_);
  int64_t offset = 0;
  for (Parameter& p : parameters_) {
    const int64_t n = p.shape.numel();
    p.value = values_.narrow(offset, n).view(p.shape);
    p.grad = grads_.narrow(offset, n).view(p.shape);
    offset += n;
    if (p.init == Init::zeros) continue;
    const Philox rng(seed, stream_id(p.name));
    for (int64_t i = 0; i < n; ++i) {
      const double v =
          p.init == Init::ones ? 1.0 : p.init_std * rng.normal(static_cast<uint64_t>(i));
      if (dtype_ == DType::f32)
        p.value.data<float>()[i] = static_cast<float>(v);
      else
        p.value.data<double>()[i] = v;
    }
  }
}

void ParameterStore::zero_grads(Stream& stream) { ops::fill(grads_, 0.0, stream); }

}  // namespace moe
