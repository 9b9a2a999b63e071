// The CUDA backend's ops: the same signatures as the CPU backend (kernels/op_signatures.inc). Only
// the ops listed as CUDA ops in dispatch.cpp are defined; the others arrive with the CUDA issue.
// Also the backend's own services: the device allocator, its figures and the device count.
#pragma once

#include <vector>

#include "core/caching_allocator.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/op_types.h"

namespace moe::cuda {

using ops::AdamWOptions;
using ops::DropPolicy;
using ops::RouterScore;
using ops::RouterTopkOptions;

#include "kernels/op_signatures.inc"

Allocator& device_allocator();
MemoryStats memory_stats(int device);
Stream create_stream(Device device);
void destroy_stream(Stream& stream);
void synchronize(Stream& stream);
int device_count();  // 0 when cudaGetDeviceCount returns an error (no driver, no device)
// ops::set_matmul_tf32's CUDA side (matmul.cu).
void set_matmul_tf32(bool on);
// A host -> device copy queued from pinned staging memory (host_staging.cu), so that the host does
// not wait; false when it is larger than ops::kStagedUploadBytes, for the caller to copy the
// pageable way.
bool upload_staged(const void* src, void* dst, size_t bytes, Device device, Stream& stream);
// How many GEMM plans (descriptors and algorithm of one exact problem) matmul.cu keeps at most.
constexpr size_t kMatmulPlans = 1024;

}  // namespace moe::cuda
