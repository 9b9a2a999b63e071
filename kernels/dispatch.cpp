// The op API: validates every call once, then hands it to a backend.
// This is the only file with #if MOE_WITH_CUDA (DESIGN.md §2). Every op has both backends. Index
// values (ids, targets, positions) are checked by the backend, where the data is. Mixed precision
// on both backends: with bf16 activations, statistics and accumulated outputs may be f32
// (expect_activation_dtype_or_f32); a backend may narrow that further (the router, router losses,
// capacity and AdamW take f32 only) and says so in its error.
#include "kernels/ops.h"

#include <cmath>
#include <map>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/op_checks.h"
#include "kernels/op_profile.h"
#if MOE_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace moe::ops {

#if !MOE_WITH_CUDA
[[noreturn]] static void no_cuda_kernel(const char* op, Device device) {
  MOE_THROW(InputError, op, ": called on ", device.str(), " but MoEForge was built without CUDA");
}
#endif

#if MOE_WITH_CUDA
#define MOE_CUDA_CALL(op, device, ...) return cuda::op(__VA_ARGS__)
#else
#define MOE_CUDA_CALL(op, device, ...) no_cuda_kernel(#op, device)
#endif

// set_host_backed_cuda: device tensors are host memory and run the CPU kernels.
static bool g_host_backed_cuda = false;
constexpr int kHostBackedDevices = 64;  // one per rank on a node, as many as tests start
struct HostKernelScope {
  HostKernelScope() { ++detail::host_kernel_depth; }
  ~HostKernelScope() { --detail::host_kernel_depth; }
  HostKernelScope(const HostKernelScope&) = delete;
  HostKernelScope& operator=(const HostKernelScope&) = delete;
};

#define MOE_DISPATCH(op, device, ...)                   \
  do {                                                  \
    const OpProfileScope profile_scope(#op);            \
    if ((device).is_cpu()) return cpu::op(__VA_ARGS__); \
    if (g_host_backed_cuda) {                           \
      const HostKernelScope host_kernel;                \
      return cpu::op(__VA_ARGS__);                      \
    }                                                   \
    MOE_CUDA_CALL(op, device, __VA_ARGS__);             \
  } while (0)

// --- backends -------------------------------------------------------------------------------

void init_backends() {
#if MOE_WITH_CUDA
  if (!g_host_backed_cuda) register_allocator(DeviceType::cuda, &cuda::device_allocator());
#endif
}

bool built_with_cuda() { return MOE_WITH_CUDA != 0; }

namespace {
class HostBackedAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device) override {
    return host_allocator().allocate(bytes, Device::cpu());
  }
  void deallocate(void* ptr, size_t bytes, Device) override {
    host_allocator().deallocate(ptr, bytes, Device::cpu());
  }
};
}  // namespace

void set_host_backed_cuda(bool on) {
  static HostBackedAllocator host_backed;
  static Allocator* before = nullptr;
  if (on == g_host_backed_cuda) return;
  if (on) {
    try {
      before = &allocator_for(Device::cuda());
    } catch (const InputError&) {
      before = nullptr;  // none registered
    }
  }
  register_allocator(DeviceType::cuda, on ? &host_backed : before);
  set_device_memory_is_host(on);
  g_host_backed_cuda = on;
}

int cuda_device_count() {
  if (g_host_backed_cuda) return kHostBackedDevices;
#if MOE_WITH_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

MemoryStats device_memory_stats(Device device) {
#if MOE_WITH_CUDA
  if (device.is_cuda() && !g_host_backed_cuda) return cuda::memory_stats(device.index);
#endif
  (void)device;
  return {};
}

// --- streams and placement ------------------------------------------------------------------

// Live streams per CUDA device: the caching allocator hands a freed block out again at once,
// which is safe only while each device has one stream (core/caching_allocator.h).
static std::map<int, int> g_live_streams;

Stream create_stream(Device device) {
  if (device.is_cpu()) return Stream::cpu();
  if (g_live_streams[device.index] > 0)
    MOE_THROW(DeviceError, "a second stream on ", device.str(),
              ": the caching allocator reuses freed blocks at once, which is safe only with one "
              "stream per device (core/caching_allocator.h)");
  Stream stream{device, nullptr};
#if MOE_WITH_CUDA
  if (!g_host_backed_cuda) stream = cuda::create_stream(device);
#else
  if (!g_host_backed_cuda) no_cuda_kernel("create_stream", device);
#endif
  ++g_live_streams[device.index];
  return stream;
}

void destroy_stream(Stream& stream) {
  if (stream.device.is_cuda()) --g_live_streams[stream.device.index];
#if MOE_WITH_CUDA
  if (stream.device.is_cuda() && !g_host_backed_cuda) cuda::destroy_stream(stream);
#endif
  stream = Stream::cpu();
}

static HostWaits g_host_waits;
HostWaits host_waits() { return g_host_waits; }

void synchronize(Stream& stream) {
  if (stream.device.is_cpu()) return;
  ++g_host_waits.reads;
  if (g_host_backed_cuda) return;
#if MOE_WITH_CUDA
  cuda::synchronize(stream);
#else
  no_cuda_kernel("synchronize", stream.device);
#endif
}

Tensor zeros(Shape shape, DType dtype, Device device, Stream& stream) {
  Tensor t = Tensor::empty(shape, dtype, device);
  fill(t, 0.0, stream);
  return t;
}

Tensor to_device(const Tensor& t, Device device, Stream& stream) {
  if (t.device() == device) return t;
  Tensor moved = Tensor::empty(t.shape(), t.dtype(), device);
  copy(t, moved, stream);
  return moved;
}

Tensor host_copy(const Tensor& t, Stream& stream) {
  // The copy is ordered on the caller's stream when it belongs to t's device.
  Stream ordered = stream.device == t.device() ? stream : Stream{t.device(), nullptr};
  Tensor out = Tensor::empty(t.shape(), t.dtype());
  copy(t, out, ordered);
  synchronize(ordered);
  return out;
}

Tensor to_host(const Tensor& t, Stream& stream) { return t.is_cpu() ? t : host_copy(t, stream); }

std::vector<Tensor> to_host(const std::vector<Tensor>& tensors, Stream& stream) {
  std::vector<Tensor> out;
  bool waits = false;
  for (const Tensor& t : tensors) {
    if (t.is_cpu()) {
      out.push_back(t);
      continue;
    }
    MOE_CHECK(t.device() == stream.device, "to_host: a tensor on ", t.device().str(),
              " read on a stream of ", stream.device.str());
    out.push_back(Tensor::empty(t.shape(), t.dtype()));
    copy(t, out.back(), stream);
    waits = true;
  }
  if (waits) synchronize(stream);
  return out;
}

// --- memory and elementwise -----------------------------------------------------------------

void fill(Tensor& out, double value, Stream& stream) {
  expect_defined("fill", "out", out);
  MOE_DISPATCH(fill, out.device(), out, value, stream);
}

void copy(const Tensor& src, Tensor& dst, Stream& stream) {
  expect_defined("copy", "src", src);
  expect_defined("copy", "dst", dst);
  expect_dtype("copy", "dst", dst, src.dtype());
  MOE_CHECK(src.numel() == dst.numel(), "copy: src ", src.str(), " and dst ", dst.str(),
            " have different element counts");
  if (src.is_cpu() && dst.is_cpu()) return cpu::copy(src, dst, stream);
  if (src.is_cpu() && src.nbytes() > kStagedUploadBytes) ++g_host_waits.uploads;
  if (g_host_backed_cuda) {
    const HostKernelScope host_kernel;
    return cpu::copy(src, dst, stream);
  }
  MOE_CUDA_CALL(copy, dst.device(), src, dst, stream);
}

void copy_columns(const Tensor& src, int64_t src_col, Tensor& dst, int64_t dst_col, int64_t width,
                  Stream& stream) {
  const char* op = "copy_columns";
  expect_same_device_and_float_dtype(op, {&src, &dst});
  expect_ndim(op, "src", src, 2);
  expect_ndim(op, "dst", dst, 2);
  MOE_CHECK(src.dim(0) == dst.dim(0), op, ": src ", src.str(), " and dst ", dst.str(),
            " have different row counts");
  MOE_CHECK(width >= 0 && src_col >= 0 && src_col + width <= src.dim(1), op, ": columns [", src_col,
            ", ", src_col + width, ") are outside src ", src.str());
  MOE_CHECK(dst_col >= 0 && dst_col + width <= dst.dim(1), op, ": columns [", dst_col, ", ",
            dst_col + width, ") are outside dst ", dst.str());
  MOE_CHECK(src.raw() != dst.raw() || src.numel() == 0, op, ": src and dst are the same tensor");
  if (src.numel() == 0 || width == 0) return;
  MOE_DISPATCH(copy_columns, src.device(), src, src_col, dst, dst_col, width, stream);
}

void convert(const Tensor& src, Tensor& dst, Stream& stream) {
  expect_float("convert", "src", src);
  expect_float("convert", "dst", dst);
  MOE_CHECK(src.device() == dst.device(), "convert: src on ", src.device().str(), ", dst on ",
            dst.device().str(), " (use copy to move between devices)");
  MOE_CHECK(src.numel() == dst.numel(), "convert: src ", src.str(), " and dst ", dst.str(),
            " have different element counts");
  MOE_DISPATCH(convert, src.device(), src, dst, stream);
}

void add(const Tensor& a, const Tensor& b, Tensor& out, Stream& stream) {
  expect_same_device_and_float_dtype("add", {&a, &b, &out});
  expect_shape("add", "b", b, a.shape());
  expect_shape("add", "out", out, a.shape());
  MOE_DISPATCH(add, a.device(), a, b, out, stream);
}

void axpy(float alpha, const Tensor& x, Tensor& y, Stream& stream) {
  expect_same_device_and_float_dtype("axpy", {&x, &y});
  expect_shape("axpy", "y", y, x.shape());
  MOE_DISPATCH(axpy, x.device(), alpha, x, y, stream);
}

void scale(Tensor& x, float factor, Stream& stream) {
  expect_float("scale", "x", x);
  MOE_DISPATCH(scale, x.device(), x, factor, stream);
}

double sum_of_squares(const Tensor& x, Stream& stream) {
  expect_float("sum_of_squares", "x", x);
  if (!x.is_cpu()) ++g_host_waits.reads;  // the CUDA backend reads the sum back
  MOE_DISPATCH(sum_of_squares, x.device(), x, stream);
}

void sum_of_squares_into(const Tensor& x, Tensor& total, Stream& stream) {
  expect_float("sum_of_squares_into", "x", x);
  expect_shape("sum_of_squares_into", "total", total, {1});
  expect_dtype("sum_of_squares_into", "total", total, DType::f64);
  MOE_CHECK(total.device() == x.device(), "sum_of_squares_into: total is on ", total.device().str(),
            ", x on ", x.device().str());
  MOE_DISPATCH(sum_of_squares_into, x.device(), x, total, stream);
}

// --- matmul ---------------------------------------------------------------------------------

static bool g_matmul_tf32 = false;

void set_matmul_tf32(bool on) {
  g_matmul_tf32 = on;
#if MOE_WITH_CUDA
  cuda::set_matmul_tf32(on);
#endif
}

bool matmul_tf32() { return g_matmul_tf32; }

namespace {
struct MatmulDims {
  int64_t batch, m, n, k;
};

MatmulDims matmul_dims(const char* op, const Tensor& a, const Tensor& b, bool trans_a,
                       bool trans_b) {
  MOE_CHECK(a.ndim() == b.ndim() && (a.ndim() == 2 || a.ndim() == 3), op,
            ": a and b must both be 2-D or both 3-D (batched), got a ", a.shape().str(), " and b ",
            b.shape().str());
  const int r = a.ndim() - 2;
  const int64_t batch = r ? a.dim(0) : 1;
  MOE_CHECK(!r || b.dim(0) == batch, op, ": batch sizes differ: a ", a.shape().str(), ", b ",
            b.shape().str());
  const int64_t m = trans_a ? a.dim(r + 1) : a.dim(r);
  const int64_t ka = trans_a ? a.dim(r) : a.dim(r + 1);
  const int64_t kb = trans_b ? b.dim(r + 1) : b.dim(r);
  const int64_t n = trans_b ? b.dim(r) : b.dim(r + 1);
  MOE_CHECK(ka == kb, op, ": inner dims differ: op(a) is ", m, "x", ka, ", op(b) is ", kb, "x", n,
            " (a ", a.shape().str(), trans_a ? " transposed" : "", ", b ", b.shape().str(),
            trans_b ? " transposed" : "", ")");
  return {batch, m, n, ka};
}

Shape matmul_out_shape(const MatmulDims& d, int ndim) {
  return ndim == 3 ? Shape{d.batch, d.m, d.n} : Shape{d.m, d.n};
}
}  // namespace

void matmul(const Tensor& a, const Tensor& b, Tensor& c, bool trans_a, bool trans_b, float alpha,
            float beta, Stream& stream) {
  expect_same_device_and_float_dtype("matmul", {&a, &b});
  expect_activation_dtype_or_f32("matmul", "c", c, a);
  const MatmulDims d = matmul_dims("matmul", a, b, trans_a, trans_b);
  expect_shape("matmul", "c", c, matmul_out_shape(d, a.ndim()));
  MOE_DISPATCH(matmul, a.device(), a, b, c, trans_a, trans_b, alpha, beta, stream);
}

void matmul_backward(const Tensor& a, const Tensor& b, const Tensor& dc, Tensor* da, Tensor* db,
                     bool trans_a, bool trans_b, Stream& stream) {
  expect_same_device_and_float_dtype("matmul_backward", {&a, &b, &dc});
  const MatmulDims d = matmul_dims("matmul_backward", a, b, trans_a, trans_b);
  expect_shape("matmul_backward", "dc", dc, matmul_out_shape(d, a.ndim()));
  if (da) expect_activation_dtype_or_f32("matmul_backward", "da", *da, a);
  if (da) expect_shape("matmul_backward", "da", *da, a.shape());
  if (db) expect_activation_dtype_or_f32("matmul_backward", "db", *db, a);
  if (db) expect_shape("matmul_backward", "db", *db, b.shape());
  MOE_DISPATCH(matmul_backward, a.device(), a, b, dc, da, db, trans_a, trans_b, stream);
}

// --- embedding ------------------------------------------------------------------------------

// The first vocabulary id of a shard (vocab-parallel embedding and cross-entropy).
static void expect_vocab_start(const char* op, int64_t vocab_start) {
  MOE_CHECK(vocab_start >= 0, op, ": vocab_start must be >= 0, got ", vocab_start);
}

void embedding_forward(const Tensor& ids, const Tensor& table, int64_t vocab_start, Tensor& out,
                       Stream& stream) {
  expect_same_device_and_float_dtype("embedding_forward", {&ids, &table, &out});
  expect_ndim("embedding_forward", "ids", ids, 1);
  expect_dtype("embedding_forward", "ids", ids, DType::i32);
  expect_ndim("embedding_forward", "table", table, 2);
  expect_shape("embedding_forward", "out", out, {ids.dim(0), table.dim(1)});
  expect_vocab_start("embedding_forward", vocab_start);
  MOE_DISPATCH(embedding_forward, ids.device(), ids, table, vocab_start, out, stream);
}

void embedding_backward(const Tensor& ids, const Tensor& dout, int64_t vocab_start, Tensor& dtable,
                        Stream& stream) {
  expect_same_device_and_float_dtype("embedding_backward", {&ids, &dout});
  expect_activation_dtype_or_f32("embedding_backward", "dtable", dtable, dout);
  expect_ndim("embedding_backward", "ids", ids, 1);
  expect_dtype("embedding_backward", "ids", ids, DType::i32);
  expect_ndim("embedding_backward", "dtable", dtable, 2);
  expect_shape("embedding_backward", "dout", dout, {ids.dim(0), dtable.dim(1)});
  expect_vocab_start("embedding_backward", vocab_start);
  MOE_DISPATCH(embedding_backward, ids.device(), ids, dout, vocab_start, dtable, stream);
}

// --- rmsnorm --------------------------------------------------------------------------------

void rmsnorm_forward(const Tensor& x, const Tensor& weight, float eps, Tensor& y, Tensor& rstd,
                     Stream& stream) {
  expect_same_device_and_float_dtype("rmsnorm_forward", {&x, &weight, &y});
  expect_activation_dtype_or_f32("rmsnorm_forward", "rstd", rstd, x);
  expect_ndim("rmsnorm_forward", "x", x, 2);
  expect_shape("rmsnorm_forward", "weight", weight, {x.dim(1)});
  expect_shape("rmsnorm_forward", "y", y, x.shape());
  expect_shape("rmsnorm_forward", "rstd", rstd, {x.dim(0)});
  MOE_CHECK(eps > 0, "rmsnorm_forward: eps must be > 0, got ", eps);
  MOE_DISPATCH(rmsnorm_forward, x.device(), x, weight, eps, y, rstd, stream);
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      Tensor& dx, Tensor& dweight, Stream& stream) {
  expect_same_device_and_float_dtype("rmsnorm_backward", {&dy, &x, &weight, &dx});
  expect_activation_dtype_or_f32("rmsnorm_backward", "rstd", rstd, x);
  expect_ndim("rmsnorm_backward", "x", x, 2);
  expect_shape("rmsnorm_backward", "dy", dy, x.shape());
  expect_shape("rmsnorm_backward", "dx", dx, x.shape());
  expect_shape("rmsnorm_backward", "weight", weight, {x.dim(1)});
  if (dweight.defined()) {
    expect_activation_dtype_or_f32("rmsnorm_backward", "dweight", dweight, x);
    expect_shape("rmsnorm_backward", "dweight", dweight, {x.dim(1)});
  }
  expect_shape("rmsnorm_backward", "rstd", rstd, {x.dim(0)});
  MOE_DISPATCH(rmsnorm_backward, x.device(), dy, x, weight, rstd, dx, dweight, stream);
}

// --- rope -----------------------------------------------------------------------------------

static void check_rope(const char* op, const Tensor& x, const Tensor& positions,
                       const Tensor& inv_freq, float scale, const Tensor& out) {
  expect_same_device_and_float_dtype(op, {&x, &positions, &out});
  expect_ndim(op, "x", x, 3);
  MOE_CHECK(x.dim(2) % 2 == 0, op, ": head_dim must be even for rotary embedding, got ", x.dim(2));
  expect_shape(op, "positions", positions, {x.dim(0)});
  expect_dtype(op, "positions", positions, DType::i32);
  expect_shape(op, "out", out, x.shape());
  expect_defined(op, "inv_freq", inv_freq);
  MOE_CHECK(inv_freq.device() == x.device(), op, ": inv_freq is on ", inv_freq.device().str(),
            ", x on ", x.device().str());
  expect_dtype(op, "inv_freq", inv_freq, DType::f64);
  expect_shape(op, "inv_freq", inv_freq, {x.dim(2) / 2});
  MOE_CHECK(scale > 0, op, ": rope scale must be > 0, got ", scale);
}

void rope_forward(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float scale,
                  Tensor& out, Stream& stream) {
  check_rope("rope_forward", x, positions, inv_freq, scale, out);
  MOE_DISPATCH(rope_forward, x.device(), x, positions, inv_freq, scale, out, stream);
}

void rope_backward(const Tensor& dout, const Tensor& positions, const Tensor& inv_freq, float scale,
                   Tensor& dx, Stream& stream) {
  check_rope("rope_backward", dout, positions, inv_freq, scale, dx);
  MOE_DISPATCH(rope_backward, dout.device(), dout, positions, inv_freq, scale, dx, stream);
}

// --- attention ------------------------------------------------------------------------------

static void check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& out, const Tensor& lse) {
  expect_same_device_and_float_dtype(op, {&q, &k, &v, &out});
  expect_activation_dtype_or_f32(op, "lse", lse, q);
  expect_ndim(op, "q", q, 4);
  expect_ndim(op, "k", k, 4);
  const int64_t batch = q.dim(0), seq = q.dim(1), q_heads = q.dim(2), head_dim = q.dim(3);
  const int64_t kv_heads = k.dim(2);
  MOE_CHECK(kv_heads > 0 && q_heads % kv_heads == 0, op, ": query heads (", q_heads,
            ") must be a multiple of key/value heads (", kv_heads, ")");
  expect_shape(op, "k", k, {batch, seq, kv_heads, head_dim});
  expect_shape(op, "v", v, {batch, seq, kv_heads, head_dim});
  expect_shape(op, "out", out, q.shape());
  expect_shape(op, "lse", lse, {batch, q_heads, seq});
}

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, float softmax_scale,
                       Tensor& out, Tensor& lse, Stream& stream) {
  check_attention("attention_forward", q, k, v, out, lse);
  MOE_DISPATCH(attention_forward, q.device(), q, k, v, softmax_scale, out, lse, stream);
}

void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& out, const Tensor& lse, float softmax_scale, Tensor& dq,
                        Tensor& dk, Tensor& dv, Stream& stream) {
  check_attention("attention_backward", q, k, v, out, lse);
  expect_same_device_and_float_dtype("attention_backward", {&q, &dout, &dq, &dk, &dv});
  expect_shape("attention_backward", "dout", dout, q.shape());
  expect_shape("attention_backward", "dq", dq, q.shape());
  expect_shape("attention_backward", "dk", dk, k.shape());
  expect_shape("attention_backward", "dv", dv, v.shape());
  MOE_DISPATCH(attention_backward, q.device(), dout, q, k, v, out, lse, softmax_scale, dq, dk, dv,
               stream);
}

// --- swiglu ---------------------------------------------------------------------------------

void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out, Stream& stream) {
  expect_same_device_and_float_dtype("swiglu_forward", {&gate, &up, &out});
  expect_ndim("swiglu_forward", "gate", gate, 2);
  expect_shape("swiglu_forward", "up", up, gate.shape());
  expect_shape("swiglu_forward", "out", out, gate.shape());
  MOE_DISPATCH(swiglu_forward, gate.device(), gate, up, out, stream);
}

void swiglu_backward(const Tensor& dout, const Tensor& gate, const Tensor& up, Tensor& dgate,
                     Tensor& dup, Stream& stream) {
  expect_same_device_and_float_dtype("swiglu_backward", {&dout, &gate, &up, &dgate, &dup});
  expect_ndim("swiglu_backward", "gate", gate, 2);
  for (const auto& [name, t] :
       {std::pair{"dout", &dout}, {"up", &up}, {"dgate", &dgate}, {"dup", &dup}})
    expect_shape("swiglu_backward", name, *t, gate.shape());
  MOE_DISPATCH(swiglu_backward, gate.device(), dout, gate, up, dgate, dup, stream);
}

// --- sigmoid gate ---------------------------------------------------------------------------

static void check_sigmoid_gate(const char* op, const Tensor& x, const Tensor& logits) {
  expect_ndim(op, "x", x, 2);
  expect_shape(op, "logits", logits, {x.dim(0), 1});
}

void sigmoid_gate_forward(const Tensor& x, const Tensor& logits, Tensor& out, Stream& stream) {
  expect_same_device_and_float_dtype("sigmoid_gate_forward", {&x, &logits, &out});
  check_sigmoid_gate("sigmoid_gate_forward", x, logits);
  expect_shape("sigmoid_gate_forward", "out", out, x.shape());
  MOE_DISPATCH(sigmoid_gate_forward, x.device(), x, logits, out, stream);
}

void sigmoid_gate_backward(const Tensor& dout, const Tensor& x, const Tensor& logits, Tensor& dx,
                           Tensor& dlogits, Stream& stream) {
  expect_same_device_and_float_dtype("sigmoid_gate_backward", {&dout, &x, &logits, &dx, &dlogits});
  check_sigmoid_gate("sigmoid_gate_backward", x, logits);
  expect_shape("sigmoid_gate_backward", "dout", dout, x.shape());
  expect_shape("sigmoid_gate_backward", "dx", dx, x.shape());
  expect_shape("sigmoid_gate_backward", "dlogits", dlogits, logits.shape());
  MOE_DISPATCH(sigmoid_gate_backward, x.device(), dout, x, logits, dx, dlogits, stream);
}

// --- gate mix -------------------------------------------------------------------------------

static void check_gate_mix(const char* op, const Tensor& logits, const Tensor& values,
                           const Tensor& out) {
  expect_ndim(op, "logits", logits, 3);
  expect_shape(op, "values", values, logits.shape());
  expect_shape(op, "out", out, {logits.dim(1), logits.dim(2)});
}

void gate_mix_forward(const Tensor& logits, const Tensor& values, Tensor& out, Stream& stream) {
  expect_same_device_and_float_dtype("gate_mix_forward", {&logits, &values, &out});
  check_gate_mix("gate_mix_forward", logits, values, out);
  MOE_DISPATCH(gate_mix_forward, logits.device(), logits, values, out, stream);
}

void gate_mix_backward(const Tensor& dout, const Tensor& logits, const Tensor& values,
                       const Tensor& out, Tensor& dlogits, Tensor& dvalues, Stream& stream) {
  expect_same_device_and_float_dtype("gate_mix_backward",
                                     {&dout, &logits, &values, &out, &dlogits, &dvalues});
  check_gate_mix("gate_mix_backward", logits, values, out);
  expect_shape("gate_mix_backward", "dout", dout, out.shape());
  expect_shape("gate_mix_backward", "dlogits", dlogits, logits.shape());
  expect_shape("gate_mix_backward", "dvalues", dvalues, logits.shape());
  MOE_DISPATCH(gate_mix_backward, logits.device(), dout, logits, values, out, dlogits, dvalues,
               stream);
}

// --- cross-entropy --------------------------------------------------------------------------

static void check_cross_entropy(const char* op, const Tensor& logits, const Tensor& targets,
                                const Tensor& lse, int64_t vocab_start) {
  expect_same_device_and_float_dtype(op, {&logits, &targets});
  expect_activation_dtype_or_f32(op, "lse", lse, logits);
  expect_ndim(op, "logits", logits, 2);
  expect_shape(op, "targets", targets, {logits.dim(0)});
  expect_dtype(op, "targets", targets, DType::i32);
  expect_shape(op, "lse", lse, {logits.dim(0)});
  expect_vocab_start(op, vocab_start);
}

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, int ignore_index,
                           int64_t vocab_start, Tensor& target_logits, Tensor& lse,
                           Stream& stream) {
  check_cross_entropy("cross_entropy_forward", logits, targets, lse, vocab_start);
  expect_activation_dtype_or_f32("cross_entropy_forward", "target_logits", target_logits, logits);
  expect_shape("cross_entropy_forward", "target_logits", target_logits, {logits.dim(0)});
  MOE_DISPATCH(cross_entropy_forward, logits.device(), logits, targets, ignore_index, vocab_start,
               target_logits, lse, stream);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            int ignore_index, int64_t vocab_start, float grad_scale,
                            Tensor& dlogits, Stream& stream) {
  check_cross_entropy("cross_entropy_backward", logits, targets, lse, vocab_start);
  expect_same_device_and_float_dtype("cross_entropy_backward", {&logits, &dlogits});
  expect_shape("cross_entropy_backward", "dlogits", dlogits, logits.shape());
  MOE_DISPATCH(cross_entropy_backward, logits.device(), logits, targets, lse, ignore_index,
               vocab_start, grad_scale, dlogits, stream);
}

// --- router ---------------------------------------------------------------------------------

static void check_router(const char* op, const Tensor& scores, const Tensor& probs,
                         const Tensor& expert_ids, const RouterTopkOptions& options) {
  expect_same_device_and_float_dtype(op, {&scores, &probs, &expert_ids});
  expect_ndim(op, "scores", scores, 2);
  const int64_t num_experts = scores.dim(1);
  MOE_CHECK(options.k >= 1 && options.k <= num_experts, op, ": top-k must be in [1, ", num_experts,
            "] (the number of experts), got ", options.k);
  expect_shape(op, "probs", probs, {scores.dim(0), options.k});
  expect_shape(op, "expert_ids", expert_ids, {scores.dim(0), options.k});
  expect_dtype(op, "expert_ids", expert_ids, DType::i32);
  MOE_CHECK(options.groups >= 1 && num_experts % options.groups == 0, op,
            ": groups = ", options.groups, " must divide the ", num_experts, " experts");
  MOE_CHECK(options.kept_groups >= 1 && options.kept_groups <= options.groups, op,
            ": kept_groups must be in [1, groups = ", options.groups, "], got ",
            options.kept_groups);
  MOE_CHECK(options.kept_groups * (num_experts / options.groups) >= options.k, op, ": ",
            options.kept_groups, " kept groups of ", num_experts / options.groups,
            " experts hold fewer than top-k = ", options.k);
}

void router_topk_forward(const Tensor& logits, const Tensor& bias, const RouterTopkOptions& options,
                         Tensor& probs, Tensor& expert_ids, Tensor& scores, Stream& stream) {
  check_router("router_topk_forward", logits, probs, expert_ids, options);
  expect_same_device_and_float_dtype("router_topk_forward", {&logits, &scores});
  expect_shape("router_topk_forward", "scores", scores, logits.shape());
  if (bias.defined()) {
    expect_same_device_and_float_dtype("router_topk_forward", {&logits, &bias});
    expect_shape("router_topk_forward", "bias", bias, {logits.dim(1)});
  }
  MOE_DISPATCH(router_topk_forward, logits.device(), logits, bias, options, probs, expert_ids,
               scores, stream);
}

void router_topk_backward(const Tensor& dprobs, const Tensor& dscores, const Tensor& expert_ids,
                          const Tensor& scores, const RouterTopkOptions& options, Tensor& dlogits,
                          Stream& stream) {
  check_router("router_topk_backward", scores, dprobs, expert_ids, options);
  expect_same_device_and_float_dtype("router_topk_backward", {&scores, &dlogits});
  expect_shape("router_topk_backward", "dlogits", dlogits, scores.shape());
  if (dscores.defined()) {
    expect_same_device_and_float_dtype("router_topk_backward", {&scores, &dscores});
    expect_dtype("router_topk_backward", "dscores", dscores, scores.dtype());
    expect_shape("router_topk_backward", "dscores", dscores, scores.shape());
  }
  MOE_DISPATCH(router_topk_backward, scores.device(), dprobs, dscores, expert_ids, scores, options,
               dlogits, stream);
}

// --- router losses --------------------------------------------------------------------------

// group >= 1 and divides the rows of t; returns the number of groups.
static int64_t check_groups(const char* op, const char* arg, const Tensor& t, int64_t group) {
  MOE_CHECK(group >= 1, op, ": group must be >= 1, got ", group);
  MOE_CHECK(t.dim(0) % group == 0, op, ": N = ", t.dim(0), " rows of '", arg,
            "' is not divisible by group = ", group);
  return t.dim(0) / group;
}

void moe_expert_counts(const Tensor& expert_ids, int64_t group, int choices, Tensor& counts,
                       Stream& stream) {
  const char* op = "moe_expert_counts";
  expect_same_device_and_float_dtype(op, {&expert_ids, &counts});
  expect_ndim(op, "expert_ids", expert_ids, 2);
  expect_dtype(op, "expert_ids", expert_ids, DType::i32);
  const int64_t groups = check_groups(op, "expert_ids", expert_ids, group);
  MOE_CHECK(choices >= 1 && choices <= expert_ids.dim(1), op, ": choices must be in [1, ",
            expert_ids.dim(1), "] (k), got ", choices);
  expect_ndim(op, "counts", counts, 2);
  expect_shape(op, "counts", counts, {groups, counts.dim(1)});
  expect_dtype(op, "counts", counts, DType::i64);
  MOE_DISPATCH(moe_expert_counts, counts.device(), expert_ids, group, choices, counts, stream);
}

// full[N,E] and its per-group reduction reduced[N/group,E].
static void check_group_rows(const char* op, const char* full_arg, const Tensor& full,
                             int64_t group, const char* reduced_arg, const Tensor& reduced) {
  expect_same_device_and_float_dtype(op, {&full, &reduced});
  expect_ndim(op, full_arg, full, 2);
  expect_shape(op, reduced_arg, reduced, {check_groups(op, full_arg, full, group), full.dim(1)});
}

void group_sum(const Tensor& x, int64_t group, Tensor& out, Stream& stream) {
  check_group_rows("group_sum", "x", x, group, "out", out);
  MOE_DISPATCH(group_sum, x.device(), x, group, out, stream);
}

void group_broadcast(const Tensor& w, int64_t group, Tensor& out, Stream& stream) {
  check_group_rows("group_broadcast", "out", out, group, "w", w);
  MOE_DISPATCH(group_broadcast, w.device(), w, group, out, stream);
}

static void check_logsumexp(const char* op, const Tensor& x, const Tensor& lse) {
  expect_same_device_and_float_dtype(op, {&x, &lse});
  expect_ndim(op, "x", x, 2);
  expect_shape(op, "lse", lse, {x.dim(0)});
}

void logsumexp_rows(const Tensor& x, Tensor& lse, Stream& stream) {
  check_logsumexp("logsumexp_rows", x, lse);
  MOE_DISPATCH(logsumexp_rows, x.device(), x, lse, stream);
}

void logsumexp_rows_backward(const Tensor& x, const Tensor& lse, const Tensor& dlse, Tensor& dx,
                             Stream& stream) {
  check_logsumexp("logsumexp_rows_backward", x, lse);
  expect_same_device_and_float_dtype("logsumexp_rows_backward", {&x, &dlse, &dx});
  expect_shape("logsumexp_rows_backward", "dlse", dlse, lse.shape());
  expect_shape("logsumexp_rows_backward", "dx", dx, x.shape());
  MOE_DISPATCH(logsumexp_rows_backward, x.device(), x, lse, dlse, dx, stream);
}

void normalize_rows(const Tensor& x, Tensor& out, Stream& stream) {
  expect_same_device_and_float_dtype("normalize_rows", {&x, &out});
  expect_ndim("normalize_rows", "x", x, 2);
  expect_shape("normalize_rows", "out", out, x.shape());
  MOE_DISPATCH(normalize_rows, x.device(), x, out, stream);
}

void normalize_rows_backward(const Tensor& x, const Tensor& dout, Tensor& dx, Stream& stream) {
  expect_same_device_and_float_dtype("normalize_rows_backward", {&x, &dout, &dx});
  expect_ndim("normalize_rows_backward", "x", x, 2);
  expect_shape("normalize_rows_backward", "dout", dout, x.shape());
  expect_shape("normalize_rows_backward", "dx", dx, x.shape());
  MOE_DISPATCH(normalize_rows_backward, x.device(), x, dout, dx, stream);
}

// --- token permutation by expert -------------------------------------------------------------

static void check_sorted_slots(const char* op, const Tensor& sorted_slots) {
  expect_ndim(op, "sorted_slots", sorted_slots, 1);
  expect_dtype(op, "sorted_slots", sorted_slots, DType::i32);
}

void moe_sort_by_expert(const Tensor& expert_ids, int num_experts, Tensor& sorted_slots,
                        Tensor& counts, Stream& stream) {
  expect_same_device_and_float_dtype("moe_sort_by_expert", {&expert_ids, &sorted_slots, &counts});
  expect_ndim("moe_sort_by_expert", "expert_ids", expert_ids, 2);
  expect_dtype("moe_sort_by_expert", "expert_ids", expert_ids, DType::i32);
  MOE_CHECK(num_experts >= 1, "moe_sort_by_expert: num_experts must be >= 1, got ", num_experts);
  check_sorted_slots("moe_sort_by_expert", sorted_slots);
  expect_shape("moe_sort_by_expert", "sorted_slots", sorted_slots, {expert_ids.numel()});
  expect_shape("moe_sort_by_expert", "counts", counts, {num_experts});
  expect_dtype("moe_sort_by_expert", "counts", counts, DType::i64);
  MOE_DISPATCH(moe_sort_by_expert, expert_ids.device(), expert_ids, num_experts, sorted_slots,
               counts, stream);
}

// counts is read here, on the host, for every backend: no negative count, and they add up to the
// sorted slots. Slot values are checked by the backend.
int64_t moe_apply_capacity(const Tensor& sorted_slots, const Tensor& counts, const Tensor& probs,
                           int64_t capacity, DropPolicy policy, Tensor& kept_slots,
                           Tensor& kept_counts, Stream& stream) {
  const char* op = "moe_apply_capacity";
  expect_same_device_and_float_dtype(op, {&sorted_slots, &probs, &kept_slots, &kept_counts});
  check_sorted_slots(op, sorted_slots);
  expect_ndim(op, "counts", counts, 1);
  expect_dtype(op, "counts", counts, DType::i64);
  MOE_CHECK(counts.is_cpu(), op, ": counts must be a host tensor, got ", counts.str());
  expect_ndim(op, "probs", probs, 2);
  expect_float(op, "probs", probs);
  MOE_CHECK(sorted_slots.numel() <= probs.numel(), op, ": ", sorted_slots.numel(),
            " sorted slots for probs ", probs.shape().str());
  MOE_CHECK(capacity >= 0, op, ": capacity must be >= 0, got ", capacity);
  expect_ndim(op, "kept_slots", kept_slots, 1);
  expect_dtype(op, "kept_slots", kept_slots, DType::i32);
  MOE_CHECK(kept_slots.numel() >= sorted_slots.numel(), op, ": kept_slots has ", kept_slots.numel(),
            " elements, fewer than the ", sorted_slots.numel(), " sorted slots");
  expect_shape(op, "kept_counts", kept_counts, counts.shape());
  expect_dtype(op, "kept_counts", kept_counts, DType::i64);
  int64_t total = 0;
  for (int64_t e = 0; e < counts.numel(); ++e) {
    const int64_t count = counts.data<int64_t>()[e];
    MOE_CHECK(count >= 0, op, ": counts[", e, "] = ", count, " is negative");
    total += count;
  }
  MOE_CHECK(total == sorted_slots.numel(), op, ": counts add up to ", total, ", but there are ",
            sorted_slots.numel(), " sorted slots");
  MOE_DISPATCH(moe_apply_capacity, sorted_slots.device(), sorted_slots, counts, probs, capacity,
               policy, kept_slots, kept_counts, stream);
}

static void check_permute(const char* op, const Tensor& tokens, const Tensor& sorted_slots, int k,
                          const Tensor& rows) {
  expect_same_device_and_float_dtype(op, {&tokens, &sorted_slots, &rows});
  check_sorted_slots(op, sorted_slots);
  expect_ndim(op, "x", tokens, 2);
  MOE_CHECK(k >= 1, op, ": k must be >= 1, got ", k);
  MOE_CHECK(sorted_slots.numel() <= tokens.dim(0) * k, op, ": ", sorted_slots.numel(),
            " sorted slots for ", tokens.dim(0), " tokens with k=", k);
  expect_shape(op, "out", rows, {sorted_slots.numel(), tokens.dim(1)});
}

void moe_permute(const Tensor& x, const Tensor& sorted_slots, int k, Tensor& out, Stream& stream) {
  check_permute("moe_permute", x, sorted_slots, k, out);
  MOE_DISPATCH(moe_permute, x.device(), x, sorted_slots, k, out, stream);
}

void moe_permute_backward(const Tensor& dout, const Tensor& sorted_slots, int k, Tensor& dx,
                          Stream& stream) {
  check_permute("moe_permute_backward", dx, sorted_slots, k, dout);
  MOE_DISPATCH(moe_permute_backward, dx.device(), dout, sorted_slots, k, dx, stream);
}

void moe_unpermute(const Tensor& y, const Tensor& sorted_slots, Tensor& y_slots, Stream& stream) {
  check_permute("moe_unpermute", y_slots, sorted_slots, 1, y);
  MOE_DISPATCH(moe_unpermute, y.device(), y, sorted_slots, y_slots, stream);
}

void moe_unpermute_backward(const Tensor& dy_slots, const Tensor& sorted_slots, Tensor& dy,
                            Stream& stream) {
  check_permute("moe_unpermute_backward", dy_slots, sorted_slots, 1, dy);
  MOE_DISPATCH(moe_unpermute_backward, dy.device(), dy_slots, sorted_slots, dy, stream);
}

static void check_combine(const char* op, const Tensor& y_slots, const Tensor& probs,
                          const Tensor& out) {
  expect_same_device_and_float_dtype(op, {&y_slots, &out});
  expect_activation_dtype_or_f32(op, "probs", probs, y_slots);
  expect_ndim(op, "probs", probs, 2);
  expect_ndim(op, "out", out, 2);
  expect_shape(op, "probs", probs, {out.dim(0), probs.dim(1)});
  expect_shape(op, "y_slots", y_slots, {out.dim(0) * probs.dim(1), out.dim(1)});
}

void moe_combine(const Tensor& y_slots, const Tensor& probs, Tensor& out, Stream& stream) {
  check_combine("moe_combine", y_slots, probs, out);
  MOE_DISPATCH(moe_combine, out.device(), y_slots, probs, out, stream);
}

void moe_combine_backward(const Tensor& dout, const Tensor& y_slots, const Tensor& probs,
                          Tensor& dy_slots, Tensor& dprobs, Stream& stream) {
  check_combine("moe_combine_backward", y_slots, probs, dout);
  expect_same_device_and_float_dtype("moe_combine_backward", {&y_slots, &dy_slots});
  expect_activation_dtype_or_f32("moe_combine_backward", "dprobs", dprobs, y_slots);
  expect_shape("moe_combine_backward", "dy_slots", dy_slots, y_slots.shape());
  expect_shape("moe_combine_backward", "dprobs", dprobs, probs.shape());
  MOE_DISPATCH(moe_combine_backward, dout.device(), dout, y_slots, probs, dy_slots, dprobs, stream);
}

// --- optimizer ------------------------------------------------------------------------------

void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v,
                const AdamWOptions& options, int64_t step, Stream& stream) {
  expect_same_device_and_float_dtype("adamw_step", {&param, &grad, &m, &v});
  expect_shape("adamw_step", "grad", grad, param.shape());
  expect_shape("adamw_step", "m", m, param.shape());
  expect_shape("adamw_step", "v", v, param.shape());
  MOE_CHECK(step >= 1, "adamw_step: step counts from 1, got ", step);
  MOE_CHECK(options.lr >= 0, "adamw_step: lr must be >= 0, got ", options.lr);
  MOE_CHECK(options.beta1 >= 0 && options.beta1 < 1, "adamw_step: beta1 must be in [0, 1), got ",
            options.beta1);
  MOE_CHECK(options.beta2 >= 0 && options.beta2 < 1, "adamw_step: beta2 must be in [0, 1), got ",
            options.beta2);
  MOE_CHECK(options.eps > 0, "adamw_step: eps must be > 0, got ", options.eps);
  MOE_DISPATCH(adamw_step, param.device(), param, grad, m, v, options, step, stream);
}

double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm, Stream& stream) {
  double total = 0.0;
  for (const Tensor& g : grads) total += sum_of_squares(g, stream);
  const double norm = std::sqrt(total);
  if (max_norm > 0 && norm > max_norm && std::isfinite(norm)) {
    const float factor = static_cast<float>(max_norm / (norm + 1e-6));
    for (Tensor g : grads) scale(g, factor, stream);
  }
  return norm;
}

}  // namespace moe::ops
