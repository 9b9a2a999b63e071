#include "core/shape.h"

#include "core/error.h"

namespace moe {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  MOE_CHECK(dims.size() <= kMaxDims, "a shape has at most ", kMaxDims, " dims, got ", dims.size());
  for (int64_t d : dims) {
    MOE_CHECK(d >= 0, "shape dims must be >= 0, got ", d);
    dims_[ndim_++] = d;
  }
}

int64_t Shape::operator[](int i) const {
  const int index = i < 0 ? i + ndim_ : i;
  MOE_CHECK(index >= 0 && index < ndim_, "dim ", i, " out of range for shape ", str());
  return dims_[index];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= dims_[i];
  return n;
}

Shape Shape::with_dim(int i, int64_t value) const {
  (void)(*this)[i];  // range check
  MOE_CHECK(value >= 0, "shape dims must be >= 0, got ", value);
  Shape out = *this;
  out.dims_[i < 0 ? i + ndim_ : i] = value;
  return out;
}

bool Shape::operator==(const Shape& other) const {
  if (ndim_ != other.ndim_) return false;
  for (int i = 0; i < ndim_; ++i)
    if (dims_[i] != other.dims_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::string out = "[";
  for (int i = 0; i < ndim_; ++i) out += (i ? ", " : "") + std::to_string(dims_[i]);
  return out + "]";
}

}  // namespace moe
