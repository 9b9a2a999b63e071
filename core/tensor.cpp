#include "core/tensor.h"

#include <cstring>

namespace moe {

Storage::Storage(size_t bytes, Device device)
    : data_(allocator_for(device).allocate(bytes, device)), bytes_(bytes), device_(device) {}

Storage::~Storage() {
  if (data_) allocator_for(device_).deallocate(data_, bytes_, device_);
}

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>(t.nbytes(), device);
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  if (t.nbytes()) std::memset(t.raw(), 0, t.nbytes());
  return t;
}

void* Tensor::raw() const {
  if (!storage_ || !storage_->data()) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_;
}

Tensor Tensor::narrow(int64_t start, int64_t length) const {
  MOE_CHECK(ndim() >= 1, "narrow needs at least one dim, got ", str());
  MOE_CHECK(start >= 0 && length >= 0 && start + length <= dim(0), "narrow(", start, ", ", length,
            ") out of range for dim 0 of ", str());
  Tensor t = *this;
  const int64_t row = dim(0) == 0 ? 0 : numel() / dim(0);
  t.offset_ += static_cast<size_t>(start * row) * dtype_size(dtype_);
  t.shape_ = shape_.with_dim(0, length);
  return t;
}

Tensor Tensor::view(Shape shape) const {
  MOE_CHECK(shape.numel() == numel(), "view ", shape.str(), " has ", shape.numel(),
            " elements but the tensor ", str(), " has ", numel());
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::clone() const {
  MOE_CHECK(is_cpu(), "clone needs a host tensor, got ", str());
  Tensor t = empty(shape_, dtype_);
  if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

std::string Tensor::str() const {
  return std::string(dtype_name(dtype_)) + shape_.str() + " on " + device_.str();
}

}  // namespace moe
