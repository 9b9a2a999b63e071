// An ordered queue of device work. On the CPU every op runs synchronously and the stream is empty;
// for CUDA it carries a cudaStream_t as an opaque handle so that core/ never includes a device API.
// Ops take the stream as their last argument (llm.c, ggml).
#pragma once

#include "core/device.h"

namespace moe {

struct Stream {
  Device device = Device::cpu();
  void* handle = nullptr;  // cudaStream_t for CUDA; nullptr is the default stream

  static Stream cpu() { return {}; }
};

}  // namespace moe
