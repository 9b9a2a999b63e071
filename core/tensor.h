// Tensor: a small value type over shared storage (DESIGN.md §3).
//
// Decisions:
// - Always contiguous and row-major. The only views are narrow() along dim 0 and view() (reshape);
//   no strides, so no op needs a strided fallback path.
// - Copying a Tensor copies the handle, not the data (like shared_ptr); clone() copies data (CPU).
// - Typed access, data<T>(), checks the dtype and that the tensor is on the host, so reading f32
//   storage as double, or device memory from the host, is an error, not garbage or a crash.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"

namespace moe {

namespace detail {
// Above zero while a CPU kernel runs on host-backed device tensors (ops::set_host_backed_cuda, a
// placement check for tests): kernels, OpenMP workers included, may then touch them; code outside
// ops still may not. Read only for device tensors, so host tensors never pay for it.
inline std::atomic<int> host_kernel_depth{0};
}  // namespace detail

class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(Shape shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(Shape shape,
                      DType dtype);  // host only: device tensors are filled by ops::fill
  template <typename T>
  static Tensor from_vector(Shape shape, const std::vector<T>& values);  // host tensor

  bool defined() const { return storage_ != nullptr || shape_.ndim() > 0; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return shape_.ndim(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cpu() const { return device_.is_cpu(); }

  void* raw() const;
  template <typename T>
  T* data() const {
    MOE_CHECK(dtype_of<T>() == dtype_, "tensor of dtype ", dtype_name(dtype_), " accessed as ",
              dtype_name(dtype_of<T>()));
    MOE_CHECK(is_cpu() || detail::host_kernel_depth > 0, "tensor ", str(),
              " read or written on the host: copy it to the host first");
    return static_cast<T*>(raw());
  }

  Tensor narrow(int64_t start, int64_t length) const;  // rows [start, start+length) of dim 0
  Tensor view(Shape shape) const;                      // same elements, new shape
  Tensor clone() const;                                // host only
  template <typename T>
  std::vector<T> to_vector() const;  // host only
  bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }

  std::string str() const;  // "f32[2, 3] on cpu"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_;
};

template <typename T>
Tensor Tensor::from_vector(Shape shape, const std::vector<T>& values) {
  MOE_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
            " values for shape ", shape.str());
  Tensor t = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  MOE_CHECK(is_cpu(), "to_vector needs a host tensor, got ", str());
  const T* p = data<T>();
  return std::vector<T>(p, p + numel());
}

}  // namespace moe
