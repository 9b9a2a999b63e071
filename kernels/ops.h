// The device-neutral op API. Module code calls only these functions.
//
// Conventions (DESIGN.md §3, STYLE-ANCHORS.md §2.4):
// - Every op takes explicit output tensors and the stream last; nothing allocates behind the
//   caller.
// - All tensors of one call live on one device. The CPU backend computes in f32 or f64 (f64 exists
//   so that finite-difference gradient checks run the real kernels in double precision).
// - Backward ops ASSIGN activation gradients and ACCUMULATE (+=) parameter gradients (the weights
//   of embedding, rmsnorm, and both operands of matmul_backward).
// - Shapes use the letters: N tokens (rows), D model dim, F ffn dim, V vocab, E experts, k top-k,
//   B batch, T sequence, H heads, hd head dim, R permuted rows.
// - Bad shapes, dtypes, devices or index values throw InputError naming the op, the argument, what
//   it got and what was expected. dispatch.cpp does these checks, once, for every backend.
#pragma once

#include <vector>

#include "core/caching_allocator.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/op_types.h"

namespace moe::ops {

// --- backends -------------------------------------------------------------------------------
void init_backends();  // registers the CUDA allocator when built with CUDA; idempotent
bool built_with_cuda();
int cuda_device_count();  // 0 without CUDA, or when cudaGetDeviceCount reports an error
// A placement check for tests on machines without a GPU: while on, cuda:0 tensors are host memory
// and every op on them runs the CPU kernel, so a whole training step "on the GPU" runs here, and a
// tensor left on the wrong device or device memory read outside an op fails as on a GPU
// (Tensor::data refuses device tensors outside kernels). cuda_device_count() is 64 meanwhile (a
// device per rank, as on a GPU node; all of them host memory).
// Not thread-safe; tests switch it on and off around a run.
void set_host_backed_cuda(bool on);
// The device allocator's figures (core/caching_allocator.h); zeros for the host or without CUDA.
MemoryStats device_memory_stats(Device device);

// --- streams and placement ------------------------------------------------------------------
// A new stream on a CUDA device (the empty stream for cpu). One live stream per device: a second
// is a DeviceError, since the caching allocator is single-stream (core/caching_allocator.h).
Stream create_stream(Device device);
void destroy_stream(Stream& stream);
void synchronize(Stream& stream);  // returns when the stream's work is done; no-op for cpu
Tensor zeros(Shape shape, DType dtype, Device device, Stream& stream);
// t itself when it already lives on `device`, else a copy there (ordered on stream).
Tensor to_device(const Tensor& t, Device device, Stream& stream);
// t itself when it lives on the host, else a host copy, complete when this returns.
Tensor to_host(const Tensor& t, Stream& stream);
// Always a new host tensor with t's values, complete when this returns (a snapshot).
Tensor host_copy(const Tensor& t, Stream& stream);
// to_host of each, with one wait for all of them: a layer's several small reads cost one sync.
std::vector<Tensor> to_host(const std::vector<Tensor>& tensors, Stream& stream);

// Host-to-device copies of at most this many bytes go through the CUDA backend's pinned staging
// ring and do not wait for the device; larger ones copy from pageable memory, which waits for the
// stream's earlier work.
constexpr size_t kStagedUploadBytes = size_t{1} << 20;

// The times the host waited for a CUDA device since the process started (host-backed devices
// count too, so tests here see the waits a GPU run would make). reads: synchronize calls, which
// every device-to-host read makes (one per to_host call, however many tensors). uploads: copies
// from host memory to a device larger than kStagedUploadBytes.
struct HostWaits {
  int64_t reads = 0, uploads = 0;
  int64_t total() const { return reads + uploads; }
};
HostWaits host_waits();

// A stream of its own for as long as it lives (the empty stream on the CPU).
class OwnedStream {
 public:
  explicit OwnedStream(Device device) : stream_(create_stream(device)) {}
  ~OwnedStream() { destroy_stream(stream_); }
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  Stream& get() { return stream_; }

 private:
  Stream stream_;
};

// f32 x f32 GEMMs on CUDA in TF32 (inputs rounded to 10 mantissa bits, f32 accumulation: tensor
// cores) when on; full f32 arithmetic when off, the default. bf16 GEMMs are unaffected, and so is
// the CPU backend, which always computes in f32. Process-wide; the trainer sets it from train.tf32.
void set_matmul_tf32(bool on);
bool matmul_tf32();

#include "kernels/op_signatures.inc"

// The global L2 norm of all grads; when it exceeds max_norm every grad is scaled by
// max_norm / (norm + 1e-6). Returns the norm before clipping. max_norm <= 0 disables clipping.
double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm, Stream& stream);

}  // namespace moe::ops
