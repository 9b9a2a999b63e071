// Status check for NCCL calls: throws CommError with the failing expression, NCCL's error text and
// code, file:line and rank. ncclGetLastError adds detail for system and internal errors.
#pragma once

#include <string>

#include <nccl.h>

#include "core/error.h"

namespace moe {
inline std::string describe_nccl(ncclResult_t result) {
  std::string text = ncclGetErrorString(result);
  const char* last = ncclGetLastError(nullptr);
  if (last && *last) text += std::string(" (") + last + ")";
  return text;
}
}  // namespace moe

#define MOE_NCCL_CHECK(expr) \
  MOE_CHECK_STATUS(::moe::CommError, expr, #expr, ncclSuccess, ::moe::describe_nccl)
