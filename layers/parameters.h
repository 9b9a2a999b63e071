// Parameters with a global identity, stored in flat arenas (DESIGN.md §3).
//
// Decisions:
// - Two phases. Modules declare their parameters (global name, shape, init, weight decay) while
//   they are built; allocate() then makes one value arena and one gradient arena for all of them
//   and points each parameter's tensors into them, so the optimizer, clipping and (later) gradient
//   sync work on a few large tensors.
// - Parameters live in a std::deque: the references modules keep stay valid while more are added.
// - Init values are a pure function of (seed, name, element index) through Philox, so a parameter
//   gets the same values whatever else the model contains and in any parallel layout.
// - One float dtype per store: f32 to train, f64 so that gradient checks run whole modules in
// double.
// - Buffers are state without a gradient (the router's expert bias): saved, never optimized.
#pragma once

#include <deque>
#include <string>

#include "core/stream.h"
#include "core/tensor.h"

namespace moe {

enum class Init { normal, ones, zeros };

struct Parameter {
  std::string name;  // global, e.g. "layers.3.moe.experts.w_gate"
  Shape shape;       // global shape
  Init init = Init::normal;
  double init_std = 0.0;  // for Init::normal
  bool weight_decay = true;
  Tensor value, grad;  // views into the arenas once allocated
};

struct Buffer {
  std::string name;
  Tensor value;  // the store's dtype, zero-initialized
};

class ParameterStore {
 public:
  explicit ParameterStore(DType dtype = DType::f32);

  Parameter& add(const std::string& name, Shape shape, Init init, double init_std,
                 bool weight_decay);
  Buffer& add_buffer(const std::string& name, Shape shape);
  // Creates the arenas, initializes every value from `seed` and zeroes the gradients.
  void allocate(uint64_t seed);

  DType dtype() const { return dtype_; }
  bool allocated() const { return values_.defined(); }
  const std::deque<Parameter>& parameters() const { return parameters_; }
  std::deque<Parameter>& parameters() { return parameters_; }
  const std::deque<Buffer>& buffers() const { return buffers_; }
  std::deque<Buffer>& buffers() { return buffers_; }
  const Parameter& find(const std::string& name) const;  // InputError when absent
  Parameter& find(const std::string& name);
  int64_t numel() const { return numel_; }
  Tensor& values() { return values_; }
  Tensor& grads() { return grads_; }
  void zero_grads(Stream& stream);

 private:
  DType dtype_;
  std::deque<Parameter> parameters_;
  std::deque<Buffer> buffers_;
  int64_t numel_ = 0;
  Tensor values_, grads_;
};

}  // namespace moe
