// See parameters.h. Names are unique: a second declaration of one name is an internal error,
// because it would make two modules share state silently.
#include "layers/parameters.h"

#include "core/rng.h"
#include "kernels/ops.h"

namespace moe {

ParameterStore::ParameterStore(DType dtype, Device device)
    : dtype_(dtype), compute_dtype_(dtype), device_(device) {
  MOE_CHECK(dtype == DType::f32 || dtype == DType::f64,
            "ParameterStore: parameters are f32 (or f64 for gradient checks), got ",
            dtype_name(dtype));
}

void ParameterStore::set_compute_dtype(DType dtype) {
  MOE_ASSERT(!allocated(), "ParameterStore::set_compute_dtype after allocate()");
  MOE_CHECK(dtype == dtype_ || (dtype == DType::bf16 && dtype_ == DType::f32),
            "ParameterStore: compute copies in ", dtype_name(dtype), " of ", dtype_name(dtype_),
            " parameters are not supported (bf16 copies of f32 parameters are)");
  compute_dtype_ = dtype;
}

void ParameterStore::refresh_compute(Stream& stream) {
  if (compute_.defined()) ops::convert(values_, compute_, stream);
}

Parameter& ParameterStore::add(const std::string& name, Shape shape, Init init, double init_scale,
                               bool weight_decay, Placement placement) {
  MOE_ASSERT(!allocated(), "parameter ", name, " declared after allocate()");
  for (const Parameter& p : parameters_) MOE_ASSERT(p.name != name, "parameter ", name, " twice");
  MOE_ASSERT(init != Init::identity || (shape.ndim() == 2 && shape[0] == shape[1]), "parameter ",
             name, ": identity init needs a square matrix, got ", shape.str());
  Parameter p{name, shape, init, init_scale, weight_decay, placement, shape, {}, 0, {}, {}, {}};
  p.offset.assign(shape.ndim(), 0);
  if (const auto& rows = placement.rows) {
    for (size_t i = 0; i < rows->size(); ++i)
      MOE_ASSERT(
          (*rows)[i] >= 0 && (*rows)[i] < shape[0] && (i == 0 || (*rows)[i - 1] < (*rows)[i]),
          "parameter ", name, ": placement rows must be increasing indices below ", shape[0]);
    for (const Split& split : placement.splits)
      MOE_ASSERT(split.dim != 0, "parameter ", name, ": placement rows and a split of dim 0");
    p.shape = p.shape.with_dim(0, static_cast<int64_t>(rows->size()));
  }
  for (const Split& split : placement.splits) {
    MOE_ASSERT(split.dim >= 0 && split.dim < shape.ndim() && split.count >= 1 && split.index >= 0 &&
                   split.index < split.count && p.shape[split.dim] == p.global_shape[split.dim] &&
                   shape[split.dim] % split.count == 0,
               "parameter ", name, ": bad split of dim ", split.dim, " into ", split.count);
    p.shape = p.shape.with_dim(split.dim, shape[split.dim] / split.count);
    p.offset[split.dim] = split.index * p.shape[split.dim];
  }
  numel_ += p.shape.numel();
  return parameters_.emplace_back(std::move(p));
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

static int arena_order(const Placement& placement) {
  return static_cast<int>(placement.group) * 3 + static_cast<int>(placement.tp);
}

int64_t global_index(const Shape& local, const std::vector<int64_t>& offset, const Shape& global,
                     int64_t i) {
  int64_t index = 0, stride = 1;
  for (int d = local.ndim() - 1; d >= 0; --d) {
    index += (i % local[d] + offset[d]) * stride;
    i /= local[d];
    stride *= global[d];
  }
  return index;
}

std::vector<Piece> pieces(const Parameter& p) {
  if (!p.placement.rows) return {{0, p.shape.ndim() > 0 ? p.shape[0] : 1, p.offset}};
  const std::vector<int64_t>& rows = *p.placement.rows;
  std::vector<Piece> list;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i > 0 && rows[i] == rows[i - 1] + 1) {
      ++list.back().rows;
      continue;
    }
    std::vector<int64_t> offset = p.offset;
    offset[0] = rows[i];
    list.push_back({static_cast<int64_t>(i), 1, offset});
  }
  return list;
}

// The initial value of element `index` (a global flat index) of p.
static double initial_value(const Parameter& p, const Philox& rng, int64_t index) {
  switch (p.init) {
    case Init::normal:
      return p.init_scale * rng.normal(static_cast<uint64_t>(index));
    case Init::ones:
      return 1.0;
    case Init::zeros:
      return 0.0;
    case Init::constant:
      return p.init_scale;
    case Init::identity:
      return index / p.global_shape[1] == index % p.global_shape[1] ? 1.0 : 0.0;
  }
  MOE_THROW(InternalError, "unknown Init of ", p.name);
}

void ParameterStore::lay_out() {
  int64_t offset = 0;
  for (int order = 0; order < 6; ++order)
    for (Parameter& p : parameters_)
      if (arena_order(p.placement) == order) {
        p.arena_offset = offset;
        offset += p.shape.numel();
      }
  for (Parameter& p : parameters_) {
    const int64_t n = p.shape.numel();
    p.value = values_.narrow(p.arena_offset, n).view(p.shape);
    if (grads_.defined()) p.grad = grads_.narrow(p.arena_offset, n).view(p.shape);
    p.compute = compute_.defined() ? compute_.narrow(p.arena_offset, n).view(p.shape) : p.value;
  }
}

void ParameterStore::set_rows(
    const std::vector<std::pair<Parameter*, std::vector<int64_t>>>& rows) {
  MOE_ASSERT(allocated(), "ParameterStore::set_rows before allocate()");
  int64_t numel = numel_;
  for (const auto& [p, list] : rows) {
    MOE_ASSERT(p->placement.rows, "parameter ", p->name, " is not placed by rows");
    for (size_t i = 0; i < list.size(); ++i)
      MOE_ASSERT(list[i] >= 0 && list[i] < p->global_shape[0] && (i == 0 || list[i - 1] < list[i]),
                 "parameter ", p->name, ": rows must be increasing indices below ",
                 p->global_shape[0]);
    numel -= p->shape.numel();
    p->placement.rows = list;
    p->shape = p->shape.with_dim(0, static_cast<int64_t>(list.size()));
    numel += p->shape.numel();
  }
  MOE_ASSERT(numel == numel_, "ParameterStore::set_rows changes the store's size from ", numel_,
             " to ", numel);
  lay_out();
}

void ParameterStore::allocate(uint64_t seed, bool with_grads) {
  MOE_ASSERT(!allocated(), "ParameterStore::allocate called twice");
  Stream stream{device_, nullptr};
  Tensor initial = Tensor::zeros({numel_}, dtype_);  // made on the host, then copied over once
  values_ = device_.is_cpu() ? initial : Tensor::empty({numel_}, dtype_, device_);
  if (with_grads) grads_ = ops::zeros({numel_}, dtype_, device_, stream);
  if (compute_dtype_ != dtype_) compute_ = Tensor::empty({numel_}, compute_dtype_, device_);
  for (Buffer& b : buffers_) b.value = ops::to_device(b.value, device_, stream);
  lay_out();
  for (Parameter& p : parameters_) {
    const int64_t n = p.shape.numel();
    if (p.init == Init::zeros) continue;
    const Philox rng(seed, stream_id(p.name));
    const int64_t row_size = p.shape.ndim() > 0 && p.shape[0] > 0 ? n / p.shape[0] : n;
    for (const Piece& piece : pieces(p)) {
      const Shape block = p.shape.ndim() > 0 ? p.shape.with_dim(0, piece.rows) : p.shape;
      for (int64_t j = 0; j < block.numel(); ++j) {
        const int64_t i = piece.row * row_size + j;
        const double v =
            initial_value(p, rng, global_index(block, piece.offset, p.global_shape, j));
        if (dtype_ == DType::f32)
          initial.data<float>()[p.arena_offset + i] = static_cast<float>(v);
        else
          initial.data<double>()[p.arena_offset + i] = v;
      }
    }
  }
  if (!device_.is_cpu()) ops::copy(initial, values_, stream);
  refresh_compute(stream);
  ops::synchronize(stream);  // initial is freed on return
}

ArenaRange ParameterStore::range(ParamGroup group) const {
  const ArenaRange first = range(group, TpMode::replicated), last = range(group, TpMode::partial);
  return {first.begin, last.end};
}

// The arena is ordered by arena_order, so a (group, mode) range starts after everything ordered
// before it.
ArenaRange ParameterStore::range(ParamGroup group, TpMode mode) const {
  const int order = arena_order({group, mode, {}});
  ArenaRange r;
  for (const Parameter& p : parameters_) {
    const int other = arena_order(p.placement);
    if (other < order) r.begin += p.shape.numel();
    if (other <= order) r.end += p.shape.numel();
  }
  return r;
}

std::unique_ptr<ParameterStore> ParameterStore::snapshot() const {
  MOE_ASSERT(allocated(), "snapshot of a store that is not allocated");
  auto copy = std::make_unique<ParameterStore>(dtype_);
  copy->numel_ = numel_;
  Stream stream{device_, nullptr};
  copy->values_ = ops::host_copy(values_, stream);
  copy->parameters_ = parameters_;
  for (Parameter& p : copy->parameters_) {
    p.value = copy->values_.narrow(p.arena_offset, p.shape.numel()).view(p.shape);
    p.grad = Tensor();
    p.compute = p.value;
  }
  for (const Buffer& b : buffers_)
    copy->buffers_.push_back({b.name, ops::host_copy(b.value, stream)});
  return copy;
}

void ParameterStore::zero_grads(Stream& stream) {
  if (grads_.defined()) ops::fill(grads_, 0.0, stream);
}

}  // namespace moe
