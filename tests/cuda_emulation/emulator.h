// A CPU emulator of the CUDA execution model, to run the real kernels/cuda/*.cu sources as C++ in
// CI without a GPU (tests/cuda_emulation/CMakeLists.txt compiles them against the shim headers in
// shim/, after rewrite_cuda.py has turned each launch and __shared__ declaration into the calls
// below).
//
// What it checks: kernel logic. Indexing and bounds (guard bytes after every device allocation,
// checked after each kernel, copy and free; fresh device and shared memory hold garbage, NaN in
// floats, so a missing write or an uninitialised read shows); block-level cooperation (every
// thread of a block is a fiber; __syncthreads switches between them, and a kernel that reads
// shared memory before the barrier that orders it reads garbage or another thread's stale value
// in one of the schedules); warp collectives (shuffles and votes exchange values across the 32
// fibers of a warp and need every lane of their mask: a lane that exited or diverged to another
// barrier is reported as a hang); launch configurations (block size, grid limits, shared memory
// over 48 KiB); reductions and rounding (the kernels' f32/bf16 arithmetic runs as written, with
// bf16 rounding to nearest even as the hardware does).
// Schedules (MOE_EMU_SCHEDULE): "forward" runs blocks and threads in index order, "reverse" in
// reverse, "shuffle:SEED" in a seeded random order, so that order-dependent results show. Under
// forward every warp advances one step (to its next collective or barrier) in turn; under reverse
// and shuffle a warp whose collective completes runs on at once to its next block barrier, ahead
// of the other warps, which shows a missing __syncthreads between warps that share memory.
//
// What it does not check: the GPU's memory model (fibers switch only at barriers and collectives,
// so racing writes between two barriers are serialized, and a race shows only where a schedule
// exposes it), reads out of bounds that land inside another allocation, speed, occupancy, and the
// hardware's libm (expf and friends are the host's, within an ulp or two of CUDA's). cuBLASLt and
// CUB are reference implementations (cublaslt.cpp, shim/cub), not the libraries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

typedef struct CUstream_st* cudaStream_t;

namespace emu {

struct Config {
  dim3 grid, block;
  size_t shared_bytes;
  const char* kernel = "";
  Config(dim3 g, dim3 b, size_t shmem = 0, cudaStream_t = nullptr)
      : grid(g), block(b), shared_bytes(shmem) {}
};

// The running fiber's indices (thread-local: the fibers of one block share the OS thread, and
// the scheduler points these at the fiber it resumes).
extern thread_local const uint3* current_thread;
extern thread_local uint3 current_block;
extern thread_local dim3 current_block_dim, current_grid_dim;

// Runs body once per thread of the grid, block by block, the threads of a block as fibers.
// Throws std::runtime_error naming the kernel on a hang, a bad configuration or a guard overwrite.
void run_grid(const Config& config, const std::function<void()>& body);

template <typename Kernel, typename... Args>
void launch(const char* name, Config config, Kernel kernel, Args... args) {
  config.kernel = name;
  run_grid(config, [&] { kernel(args...); });  // each thread gets its own copies of the arguments
}

void syncthreads();
// Deposits this lane's bits, waits for the lanes of mask, and returns the 32 deposited values.
const uint64_t* warp_exchange(unsigned mask, uint64_t bits);
int lane_id();
[[noreturn]] void fail(const char* what);

// Storage for one __shared__ declaration of the running block (id names the declaration).
void* shared_storage(int id, size_t bytes, size_t alignment);
void* dynamic_shared_storage();

template <typename T, int Id>
T& shared() {
  return *static_cast<T*>(shared_storage(Id, sizeof(T), alignof(T)));
}

template <typename T>
T* dynamic_shared() {
  return static_cast<T*>(dynamic_shared_storage());
}

template <typename T>
uint64_t to_bits(T value) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}

template <typename T>
T from_bits(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

// The value of lane source (within this lane's group of width lanes); a source outside the
// group keeps this lane's own value, as the hardware does.
template <typename T>
T shuffle(unsigned mask, T value, int source, int width) {
  const uint64_t* values = warp_exchange(mask, to_bits(value));
  const int lane = lane_id(), group = lane / width * width;
  if (source < group || source >= group + width) source = lane;
  if (!(mask >> source & 1u)) fail("a shuffle reads a lane outside its mask");
  return from_bits<T>(values[source]);
}

// Runs the deferred copies from pinned memory (shim/cuda_runtime.h) queued before `until` (a
// sequence number; all of them by default). Launches call it first.
void run_deferred_copies(uint64_t until = UINT64_MAX);

// Device memory: host allocations with guard bytes on both sides, garbage-filled when made.
void* device_malloc(size_t bytes);
void device_free(void* ptr);
void check_guards(const char* after);

}  // namespace emu
