// The emulator's scheduler (emulator.h): blocks run one after another on the calling thread, in
// the schedule's order; the threads of a block are fibers resumed in the schedule's
// thread order, each until it finishes or waits at a barrier (__syncthreads, or a warp
// collective). A block barrier opens when every live thread waits at it (exited threads count as
// arrived, as on Volta and later); a warp collective opens when every lane of its mask has
// deposited its value. When no fiber can run and no barrier can open, the block would hang on the
// GPU: that is reported. Values of a collective are double-buffered by generation, so a lane that
// runs ahead into the next collective does not overwrite what a slower lane has still to read.
// Switching fibers is the cost that counts (a shuffle switches 32 fibers twice): on x86-64 it is
// a few instructions of our own that save the callee-saved registers and the stack pointer;
// elsewhere ucontext's swapcontext, which also makes a system call per switch.
#include "tests/cuda_emulation/emulator.h"

#include <ucontext.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace emu {

thread_local const uint3* current_thread = nullptr;
thread_local uint3 current_block;
thread_local dim3 current_block_dim, current_grid_dim;

namespace {

constexpr int kWarpSize = 32;
constexpr int kMaxThreads = 1024;
constexpr size_t kSharedLimit = 48 * 1024;  // without the opt-in attribute no kernel here uses
constexpr size_t kStackBytes = 64 * 1024;
constexpr size_t kGuardBytes = 256;

#if defined(__x86_64__)
// switch_stack(save, load): pushes the callee-saved registers, stores the stack pointer in *save,
// loads load as the stack pointer, pops the registers saved there and returns into that context.
extern "C" void emu_switch_stack(void** save, void* load);
asm(R"(
  .pushsection .text
  .p2align 4
  .type emu_switch_stack, @function
emu_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch_stack, .-emu_switch_stack
  .popsection
)");

struct Context {
  void* stack_pointer = nullptr;
};

void switch_context(Context& from, Context& to) {
  emu_switch_stack(&from.stack_pointer, to.stack_pointer);
}

// A stack that emu_switch_stack enters at entry: six zero registers, entry as the return address,
// and below the 16-byte aligned top a zero slot where entry's own return address would be.
void make_context(Context& context, char* stack, size_t bytes, void (*entry)()) {
  auto top = reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t{15};
  auto* slots = reinterpret_cast<void**>(top) - 8;
  for (int i = 0; i < 6; ++i) slots[i] = nullptr;
  slots[6] = reinterpret_cast<void*>(entry);
  slots[7] = nullptr;
  context.stack_pointer = slots;
}
#else
struct Context {
  ucontext_t context;
};

void switch_context(Context& from, Context& to) { swapcontext(&from.context, &to.context); }

void make_context(Context& context, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = bytes;
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
}
#endif

enum class State { ready, at_barrier, at_collective, done };

struct Fiber {
  Context context;
  uint3 index;
  int lane, warp;
  State state = State::done;
};

struct Warp {
  unsigned arrived = 0, mask = 0, lanes = 0;  // lanes: the bitmask of lanes that exist
  unsigned generation = 0;
  uint64_t values[2][kWarpSize];
};

struct Schedule {
  enum Kind { forward, reverse, shuffle } kind = forward;
  uint64_t seed = 0;
};

Schedule schedule_from_environment() {
  Schedule schedule;
  const char* text = std::getenv("MOE_EMU_SCHEDULE");
  const std::string s = text ? text : "forward";
  if (s == "reverse") {
    schedule.kind = Schedule::reverse;
  } else if (s.rfind("shuffle", 0) == 0) {
    schedule.kind = Schedule::shuffle;
    schedule.seed = s.size() > 8 ? std::stoull(s.substr(8)) : 1;
  } else if (s != "forward") {
    throw std::runtime_error("MOE_EMU_SCHEDULE: expected forward, reverse or shuffle:SEED, got " +
                             s);
  }
  return schedule;
}

const Schedule& schedule() {
  static const Schedule instance = schedule_from_environment();
  return instance;
}

// Fresh device and shared memory: NaN in every float type (and -1 in integers), or under shuffle
// 0xcd bytes (a small negative float, a large negative integer).
uint8_t garbage_byte() { return schedule().kind == Schedule::shuffle ? 0xcd : 0xff; }

std::vector<int64_t> ordered(int64_t n, uint64_t salt) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (schedule().kind == Schedule::reverse) std::reverse(order.begin(), order.end());
  if (schedule().kind == Schedule::shuffle) {
    std::mt19937_64 rng(schedule().seed * 0x9e3779b97f4a7c15ull + salt);
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

// One block's run.
struct Block {
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  int live = 0, at_barrier = 0;
  Context scheduler;
  Fiber* running = nullptr;
  const std::function<void()>* body = nullptr;
  std::string error;
  alignas(16) unsigned char shared[kSharedLimit];
  size_t shared_used = 0, dynamic_bytes = 0;
  std::vector<std::pair<int, size_t>> shared_offsets;  // declaration id -> offset
};

thread_local Block* g_block = nullptr;

std::vector<std::unique_ptr<char[]>>& stacks() {
  thread_local std::vector<std::unique_ptr<char[]>> pool;
  return pool;
}

void yield(State state) {
  Fiber* self = g_block->running;
  self->state = state;
  switch_context(self->context, g_block->scheduler);
}

void fiber_entry() {
  try {
    (*g_block->body)();
  } catch (const std::exception& e) {
    g_block->error = std::string("a thread threw: ") + e.what();
  }
  Fiber* self = g_block->running;
  self->state = State::done;
  --g_block->live;
  switch_context(self->context, g_block->scheduler);
}

std::string where(const Config& config) {
  const uint3 b = current_block;
  return std::string("kernel ") + config.kernel + ", block (" + std::to_string(b.x) + "," +
         std::to_string(b.y) + "," + std::to_string(b.z) + ")";
}

void check_config(const Config& c) {
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  const auto bad = [&](const std::string& what) {
    throw std::runtime_error(std::string("kernel ") + c.kernel + ": invalid launch: " + what);
  };
  if (threads == 0 || threads > kMaxThreads) bad(std::to_string(threads) + " threads per block");
  if (c.block.z > 64) bad("blockDim.z > 64");
  if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0) bad("an empty grid");
  if (c.grid.x > 0x7fffffffu || c.grid.y > 65535 || c.grid.z > 65535) bad("grid over the limits");
  if (c.shared_bytes > kSharedLimit) bad(std::to_string(c.shared_bytes) + " B of dynamic shared");
}

void run_block(Block& block, const Config& config, uint64_t block_number) {
  const dim3 bd = config.block;
  const int threads = static_cast<int>(bd.x * bd.y * bd.z);
  block.fibers.assign(static_cast<size_t>(threads), Fiber{});
  block.warps.assign(static_cast<size_t>((threads + kWarpSize - 1) / kWarpSize), Warp{});
  block.live = threads;
  block.at_barrier = 0;
  block.error.clear();
  block.shared_offsets.clear();
  block.dynamic_bytes = config.shared_bytes;
  block.shared_used = config.shared_bytes;
  std::memset(block.shared, garbage_byte(), sizeof(block.shared));
  auto& pool = stacks();
  while (pool.size() < static_cast<size_t>(threads)) pool.emplace_back(new char[kStackBytes]);
  for (int t = 0; t < threads; ++t) {
    Fiber& f = block.fibers[static_cast<size_t>(t)];
    f.index = {t % bd.x, t / bd.x % bd.y, t / (bd.x * bd.y)};
    f.lane = t % kWarpSize;
    f.warp = t / kWarpSize;
    f.state = State::ready;
    block.warps[static_cast<size_t>(f.warp)].lanes |= 1u << f.lane;
    make_context(f.context, pool[static_cast<size_t>(t)].get(), kStackBytes, fiber_entry);
  }
  const std::vector<int64_t> order = ordered(threads, block_number);
  const auto resume = [&](int64_t t) {
    Fiber& f = block.fibers[static_cast<size_t>(t)];
    if (f.state != State::ready) return false;
    block.running = &f;
    current_thread = &f.index;
    switch_context(block.scheduler, f.context);
    if (!block.error.empty())
      throw std::runtime_error(where(config) + ", thread " + std::to_string(t) + ": " +
                               block.error);
    return true;
  };
  const bool eager = schedule().kind != Schedule::forward;
  for (;;) {
    bool ran = false;
    for (const int64_t t : order) {
      if (!resume(t)) continue;
      ran = true;
      // Eager warps: once its collective completes, the warp runs on to its next block barrier
      // before any other warp moves, so a warp that overwrites shared data the others still
      // have to read before the next __syncthreads is seen.
      const int64_t first = t / kWarpSize * kWarpSize,
                    last = std::min<int64_t>(first + kWarpSize, threads);
      for (bool again = eager; again;) {
        again = false;
        for (int64_t i = 0; i < last - first; ++i)
          again |= resume(schedule().kind == Schedule::reverse ? last - 1 - i : first + i);
      }
    }
    if (ran) continue;
    if (block.live == 0) return;
    if (block.at_barrier == block.live) {
      for (Fiber& f : block.fibers)
        if (f.state == State::at_barrier) f.state = State::ready;
      block.at_barrier = 0;
      continue;
    }
    throw std::runtime_error(where(config) +
                             ": hangs: threads wait at a barrier or warp collective that some "
                             "threads of the block (or lanes of the warp) never reach");
  }
}

}  // namespace

void run_grid(const Config& config, const std::function<void()>& body) {
  run_deferred_copies();
  check_config(config);
  check_guards("before a launch");
  auto block = std::make_unique<Block>();
  block->body = &body;
  Block* outer = g_block;
  g_block = block.get();
  current_block_dim = config.block;
  current_grid_dim = config.grid;
  const dim3 g = config.grid;
  const int64_t blocks = int64_t{g.x} * g.y * g.z;
  try {
    for (const int64_t b : ordered(blocks, ~0ull)) {
      current_block = {static_cast<unsigned>(b % g.x), static_cast<unsigned>(b / g.x % g.y),
                       static_cast<unsigned>(b / (int64_t{g.x} * g.y))};
      run_block(*block, config, static_cast<uint64_t>(b));
    }
  } catch (...) {
    g_block = outer;
    throw;
  }
  g_block = outer;
  check_guards((std::string("kernel ") + config.kernel).c_str());
}

void syncthreads() {
  ++g_block->at_barrier;
  yield(State::at_barrier);
}

const uint64_t* warp_exchange(unsigned mask, uint64_t bits) {
  Fiber* self = g_block->running;
  Warp& warp = g_block->warps[static_cast<size_t>(self->warp)];
  if ((mask & warp.lanes) != mask) fail("a warp collective's mask names lanes the block lacks");
  if (!(mask >> self->lane & 1u)) fail("a lane outside its mask calls a warp collective");
  if (warp.arrived == 0) warp.mask = mask;
  if (warp.mask != mask) fail("the lanes of a warp collective pass different masks");
  const unsigned buffer = warp.generation & 1u;
  warp.values[buffer][self->lane] = bits;
  warp.arrived |= 1u << self->lane;
  if (warp.arrived == mask) {
    for (int lane = 0; lane < kWarpSize; ++lane)
      if (mask >> lane & 1u)
        g_block->fibers[static_cast<size_t>(self->warp * kWarpSize + lane)].state = State::ready;
    warp.arrived = 0;
    ++warp.generation;
    self->state = State::ready;
    switch_context(self->context, g_block->scheduler);  // the others first, in schedule order
  } else {
    yield(State::at_collective);
  }
  return warp.values[buffer];
}

int lane_id() { return g_block->running->lane; }

void fail(const char* what) {
  g_block->error = what;
  Fiber* self = g_block->running;
  self->state = State::done;
  switch_context(self->context, g_block->scheduler);
  std::abort();  // never resumed
}

void* shared_storage(int id, size_t bytes, size_t alignment) {
  Block& b = *g_block;
  for (const auto& [declaration, offset] : b.shared_offsets)
    if (declaration == id) return b.shared + offset;
  const size_t offset = (b.shared_used + alignment - 1) / alignment * alignment;
  if (offset + bytes > kSharedLimit) fail("static and dynamic shared memory exceed 48 KiB");
  b.shared_used = offset + bytes;
  b.shared_offsets.emplace_back(id, offset);
  return b.shared + offset;
}

void* dynamic_shared_storage() {
  if (g_block->dynamic_bytes == 0) fail("extern __shared__ used by a launch that gave it 0 bytes");
  return g_block->shared;
}

// Device memory ------------------------------------------------------------------------------

namespace {

struct Allocation {
  std::unique_ptr<unsigned char[]> storage;
  size_t bytes;
};

std::map<const void*, Allocation>& allocations() {
  static auto* live = new std::map<const void*, Allocation>;
  return *live;
}

uint8_t guard_byte(size_t i) { return static_cast<uint8_t>(0xa5u ^ (i * 29u)); }

void write_guards(const Allocation& a) {
  unsigned char* base = a.storage.get();
  for (size_t i = 0; i < kGuardBytes; ++i)
    base[i] = base[kGuardBytes + a.bytes + i] = guard_byte(i);
}

// A damaged guard is reported once: it is rewritten before the throw.
void check_one(const void* data, const Allocation& a, const char* after) {
  const unsigned char* base = a.storage.get();
  for (size_t i = 0; i < kGuardBytes; ++i) {
    const bool head_ok = base[i] == guard_byte(i);
    const bool tail_ok = base[kGuardBytes + a.bytes + i] == guard_byte(i);
    if (!head_ok || !tail_ok) {
      write_guards(a);
      throw std::runtime_error(std::string(after) + " wrote " +
                               (head_ok ? "past the end" : "before the start") +
                               " of a device allocation of " + std::to_string(a.bytes) +
                               " bytes at " + std::to_string(reinterpret_cast<uintptr_t>(data)));
    }
  }
}

}  // namespace

void* device_malloc(size_t bytes) {
  Allocation a{std::make_unique<unsigned char[]>(bytes + 2 * kGuardBytes), bytes};
  write_guards(a);
  void* data = a.storage.get() + kGuardBytes;
  std::memset(data, garbage_byte(), bytes);
  allocations().emplace(data, std::move(a));
  return data;
}

void device_free(void* ptr) {
  auto found = allocations().find(ptr);
  if (found == allocations().end())
    throw std::runtime_error("cudaFree of a pointer cudaMalloc did not return");
  const Allocation freed = std::move(found->second);
  allocations().erase(found);
  check_one(ptr, freed, "something before this cudaFree");
}

void check_guards(const char* after) {
  for (const auto& [data, a] : allocations()) check_one(data, a, after);
}

}  // namespace emu
