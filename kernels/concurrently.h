// Independent pieces of work, each issuing ops, run side by side where the device allows:
// the routed experts of one MoE layer (layers/experts.cpp).
//
// Decisions:
// - On the CPU the tasks share the OpenMP threads, taken in the order given (callers list the
//   longest first, so that short ones fill the gaps at the end), one task per thread at a time.
//   The ops a task issues run on its thread alone: their OpenMP loops are nested regions (one
//   thread), and cblas calls inside a parallel region run single-threaded on the calling thread
//   (Debian's OpenMP build of OpenBLAS, as kernels/cpu/attention_f32.cpp relies on). Many small
//   GEMMs then cost no thread start-ups and keep every thread busy.
// - Elsewhere (a GPU, or host-backed CUDA tensors) the tasks run one after another on the
//   caller's thread in the same order: the stream orders them.
// - A task runs the same single-threaded ops whichever thread takes it, so when tasks write
//   disjoint outputs the results do not depend on the thread count.
// - The op profile is not thread-safe: on the CPU the whole call is one entry, `name`, and the
//   ops inside are not recorded.
// - An exception cannot leave an OpenMP region: the first one a task throws is rethrown on the
//   caller's thread once every task has ended.
#pragma once

#include <functional>
#include <vector>

#include "core/device.h"

namespace moe::ops {

// Calls task(i) for every i of order.
void concurrently(const char* name, Device device, const std::vector<int>& order,
                  const std::function<void(int)>& task);

}  // namespace moe::ops
