// Status checks for CUDA runtime and cuBLAS calls: each throws DeviceError with the failing
// expression, the library's own error text and code, file:line and rank (core/error.h).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

#define MOE_CUDA_CHECK(expr) \
  MOE_CHECK_STATUS(::moe::DeviceError, expr, #expr, cudaSuccess, cudaGetErrorString)
#define MOE_CUBLAS_CHECK(expr) \
  MOE_CHECK_STATUS(::moe::DeviceError, expr, #expr, CUBLAS_STATUS_SUCCESS, cublasGetStatusString)
