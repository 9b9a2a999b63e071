// Uploads through pinned staging memory. A copy from pageable host memory to the device waits for
// the stream's earlier work (the runtime stages it synchronously); one from pinned memory is
// queued like a kernel. So small uploads (a micro-batch's token ids, a capacity plan) are copied
// on the host into a pinned ring and queued from there, and the host goes on at once.
//
// Decisions:
// - One ring of kRingBytes per device, allocated with cudaHostAlloc on first use. Uploads above
//   ops::kStagedUploadBytes (checkpoint loads, initialization) take the pageable path.
// - Parts are taken in order, 256-byte aligned; a part that would pass the end starts over at 0.
//   Each queued upload records an event; before a part is written, the uploads whose parts it
//   overlaps are waited for, oldest first (in a steady step they finished long ago).
// - Events are pooled and reused; the ring and the events live as long as the process (see
//   device.cu on static destruction).
// - One mutex: the asynchronous checkpoint writer may upload from its own thread.
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <vector>

#include "kernels/cuda/launch.cuh"
#include "kernels/ops.h"

namespace moe::cuda {

namespace {

constexpr size_t kRingBytes = size_t{4} << 20;
constexpr size_t kAlignment = 256;
static_assert(ops::kStagedUploadBytes <= kRingBytes / 2);

struct InFlight {
  size_t begin, end;  // the ring part [begin, end)
  cudaEvent_t done;
};

struct Ring {
  char* memory = nullptr;
  size_t head = 0;
  std::deque<InFlight> in_flight;  // oldest first
  std::vector<cudaEvent_t> spare_events;
};

struct Staging {
  std::mutex mutex;
  std::map<int, Ring> rings;
};

Staging& staging() {
  static auto* instance = new Staging;  // never destroyed: see device.cu
  return *instance;
}

Ring& ring_for(int device) {
  Ring& ring = staging().rings[device];
  if (!ring.memory) {
    void* memory = nullptr;
    MOE_CUDA_CHECK(cudaHostAlloc(&memory, kRingBytes, cudaHostAllocDefault));
    ring.memory = static_cast<char*>(memory);
  }
  return ring;
}

// Waits for the uploads whose parts overlap [begin, end), oldest first.
void wait_for_part(Ring& ring, size_t begin, size_t end) {
  while (!ring.in_flight.empty()) {
    const InFlight& oldest = ring.in_flight.front();
    if (oldest.end <= begin || oldest.begin >= end) break;
    MOE_CUDA_CHECK(cudaEventSynchronize(oldest.done));
    ring.spare_events.push_back(oldest.done);
    ring.in_flight.pop_front();
  }
}

}  // namespace

bool upload_staged(const void* src, void* dst, size_t bytes, Device device, Stream& stream) {
  if (bytes == 0 || bytes > ops::kStagedUploadBytes) return false;
  MOE_CUDA_CHECK(cudaSetDevice(device.index));
  std::lock_guard lock(staging().mutex);
  Ring& ring = ring_for(device.index);
  const size_t size = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (ring.head + size > kRingBytes) {
    wait_for_part(ring, ring.head, kRingBytes);  // the skipped tail is free once its users are
    ring.head = 0;
  }
  const size_t begin = ring.head, end = begin + size;
  wait_for_part(ring, begin, end);
  std::memcpy(ring.memory + begin, src, bytes);
  MOE_CUDA_CHECK(
      cudaMemcpyAsync(dst, ring.memory + begin, bytes, cudaMemcpyHostToDevice, stream_of(stream)));
  cudaEvent_t done = nullptr;
  if (ring.spare_events.empty()) {
    MOE_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  } else {
    done = ring.spare_events.back();
    ring.spare_events.pop_back();
  }
  MOE_CUDA_CHECK(cudaEventRecord(done, stream_of(stream)));
  ring.in_flight.push_back({begin, end, done});
  ring.head = end;
  return true;
}

}  // namespace moe::cuda
