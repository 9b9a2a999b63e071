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
//   double. One device per store: the arenas and buffers live there; init values are made on the
//   host (the same Philox values on every device) and copied over once.
// - Every parameter has a global identity (name, global shape) and a Placement: which block of the
//   global tensor this rank holds (splits over TP and EP), which data-parallel group averages its
//   gradient, and how TP ranks share it. Init is by global element index, so a shard starts with
//   exactly the values of the same block of the unsharded parameter.
// - The arenas are ordered by (group, TP mode), so each kind of gradient sync is one collective
//   over one contiguous range.
// - A frozen store (BTS towers) allocates no gradients at all, so nothing can update or
//   communicate them by accident; backward skips their weight gradients.
// - Buffers are state without a gradient (the router's expert bias): saved, never optimized.
// - Mixed precision (train.precision: bf16): the values are the f32 masters the optimizer updates
//   and checkpoints hold; the layers compute with `compute`, a bf16 copy of every value in one more
//   arena, which refresh_compute() rewrites (rounding to nearest even) after anything writes the
//   values: allocate(), the optimizer step, a load, FSSDP moving owners. Without it `compute` is
//   the value itself. Gradients are f32 either way; buffers stay in the store's dtype.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/stream.h"
#include "core/tensor.h"

namespace moe {

// normal: N(0, init_scale^2); constant: init_scale everywhere; identity: a square matrix's I.
enum class Init { normal, ones, zeros, constant, identity };

// Which data-parallel group averages the gradient: dp (dense) or edp (routed experts).
enum class ParamGroup { dense, expert };
// How the ranks of a TP group hold a parameter:
// - split: each holds another block (the parameter names the dim in its splits);
// - replicated: each holds the same tensor and computes the same gradient;
// - partial: each holds the same tensor but computes only a part of its gradient (QK-norm weights
//   over a rank's heads; whole experts that see 1/tp of the tokens), summed over TP after backward.
enum class TpMode { replicated, split, partial };

// This rank holds part `index` of `count` equal parts of the global tensor along `dim`.
struct Split {
  int dim = 0;
  int index = 0;
  int count = 1;
};

struct Placement {
  ParamGroup group = ParamGroup::dense;
  TpMode tp = TpMode::replicated;
  std::vector<Split> splits;
  // Instead of a split of dim 0: the dim-0 indices this rank holds, increasing, possibly none
  // (FSSDP's owners hold any set of a layer's experts).
  std::optional<std::vector<int64_t>> rows = std::nullopt;
};

struct Parameter {
  std::string name;  // global, e.g. "layers.3.moe.experts.w_gate"
  Shape shape;       // local shape: the block this rank holds
  Init init = Init::normal;
  double init_scale = 0.0;  // the std of Init::normal, the value of Init::constant
  bool weight_decay = true;
  Placement placement;
  Shape global_shape;
  std::vector<int64_t> offset;  // where the local block starts in the global tensor, per dim
                                // (dim 0: 0 when placement.rows lists the rows instead)
  int64_t arena_offset = 0;     // where value, grad and compute start in the arenas
  Tensor value, grad;           // views into the arenas once allocated
  Tensor compute;               // what the layers compute with: value, or its bf16 copy
  // The copy of the value in x's dtype: the master for an input of the store's dtype (the router
  // runs in f32), else the compute copy.
  const Tensor& for_input(const Tensor& x) const {
    return x.dtype() == value.dtype() ? value : compute;
  }
};

// A range [begin, end) of the flat arenas.
struct ArenaRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

struct Buffer {
  std::string name;
  Tensor value;  // the store's dtype, zero-initialized
};

// The flat index in a tensor of shape `global` of element i of its block of shape `local` that
// starts at `offset` (one entry per dim).
int64_t global_index(const Shape& local, const std::vector<int64_t>& offset, const Shape& global,
                     int64_t i);

// A part of a parameter's local block that is one box of the global tensor: local rows
// [row, row + rows) (dim 0), starting at `offset` in the global tensor.
struct Piece {
  int64_t row = 0, rows = 0;
  std::vector<int64_t> offset;
};
// The whole local block for split placements; one piece per run of consecutive indices for
// placement.rows (none when it lists none).
std::vector<Piece> pieces(const Parameter& p);

class ParameterStore {
 public:
  explicit ParameterStore(DType dtype = DType::f32, Device device = Device::cpu());

  // shape is the global shape; the placement's splits must divide it.
  Parameter& add(const std::string& name, Shape shape, Init init, double init_scale,
                 bool weight_decay, Placement placement = {});
  Buffer& add_buffer(const std::string& name, Shape shape);
  // Creates the arenas, initializes every value from `seed` and zeroes the gradients. A frozen
  // store (with_grads = false) has no gradient arena: every Parameter::grad is undefined, and the
  // layers skip the weight-gradient work for it while still passing gradients to their inputs.
  void allocate(uint64_t seed, bool with_grads = true);

  // bf16: the layers compute with bf16 copies of the values (only for an f32 store, before
  // allocate()). The store's own dtype (the default) makes every compute copy the value itself.
  void set_compute_dtype(DType dtype);
  DType compute_dtype() const { return compute_dtype_; }
  // Rewrites the compute copies from the values; nothing when they are the values.
  void refresh_compute(Stream& stream);

  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool allocated() const { return values_.defined(); }
  const std::deque<Parameter>& parameters() const { return parameters_; }
  std::deque<Parameter>& parameters() { return parameters_; }
  const std::deque<Buffer>& buffers() const { return buffers_; }
  std::deque<Buffer>& buffers() { return buffers_; }
  const Parameter& find(const std::string& name) const;  // InputError when absent
  Parameter& find(const std::string& name);
  int64_t numel() const { return numel_; }  // local elements
  // The arena range of one group's parameters, or of one group's parameters in one TP mode.
  ArenaRange range(ParamGroup group) const;
  ArenaRange range(ParamGroup group, TpMode mode) const;
  Tensor& values() { return values_; }
  Tensor& grads() { return grads_; }
  void zero_grads(Stream& stream);
  // New row lists for parameters placed by rows (FSSDP moving expert owners), keeping the store's
  // size; the arenas are laid out again. Contents are not moved: the caller rewrites the values
  // (and whatever else it keeps by arena offset, such as optimizer moments) of every parameter.
  void set_rows(const std::vector<std::pair<Parameter*, std::vector<int64_t>>>& rows);
  // A host copy of the values and buffers (no gradients) with the same parameters: a snapshot
  // that a background checkpoint writer reads while training goes on.
  std::unique_ptr<ParameterStore> snapshot() const;

 private:
  void lay_out();  // arena offsets in (group, TP mode) order, and the views into the arenas

  DType dtype_, compute_dtype_;
  Device device_;
  std::deque<Parameter> parameters_;
  std::deque<Buffer> buffers_;
  int64_t numel_ = 0;
  Tensor values_, grads_, compute_;  // compute_: defined only for a separate compute dtype
};

}  // namespace moe
