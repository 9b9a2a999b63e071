// The reference cuBLASLt of shim/cublasLt.h. The GEMM is a plain loop accumulating in f32 in k
// order (cuBLASLt's order differs; matmul.cu's contract is the accumulation's error, not the bits).
// Under CUBLAS_COMPUTE_32F_FAST_TF32 the f32 inputs are rounded to TF32 (10 mantissa bits, to
// nearest even) first. It checks what the library would refuse: a layout whose shape does not fit
// the transposes, a leading dimension below the rows, batch counts that differ.
#include <cmath>
#include <cstring>

#include "tests/cuda_emulation/shim/cublasLt.h"
#include "tests/cuda_emulation/shim/cuda_bf16.h"

struct cublasLtContext {};
struct cublasLtMatmulDescOpaque_t {
  cublasComputeType_t compute;
  cublasOperation_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
};
struct cublasLtMatrixLayoutOpaque_t {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld, batch_stride = 0;
  int32_t batch = 1;
};
struct cublasLtMatmulPreferenceOpaque_t {};

namespace {

template <typename T>
cublasStatus_t read_attribute(T& out, const void* value, size_t bytes) {
  if (bytes != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&out, value, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

float load(const void* base, cudaDataType_t type, int64_t index) {
  if (type == CUDA_R_32F) return static_cast<const float*>(base)[index];
  return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]);
}

void store(void* base, cudaDataType_t type, int64_t index, float value) {
  if (type == CUDA_R_32F)
    static_cast<float*>(base)[index] = value;
  else
    static_cast<__nv_bfloat16*>(base)[index] = __float2bfloat16_rn(value);
}

float tf32(float x) {
  if (!std::isfinite(x)) return x;
  const unsigned bits = __float_as_uint(x);
  return __uint_as_float((bits + 0xfffu + (bits >> 13 & 1u)) & ~0x1fffu);
}

bool supported(cudaDataType_t type) { return type == CUDA_R_32F || type == CUDA_R_16BF; }

EmulatedCublasLtCounts g_counts;

// Whether the layouts fit the operation, as the library checks them.
bool fits(cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t al, cublasLtMatrixLayout_t bl,
          cublasLtMatrixLayout_t cl, cublasLtMatrixLayout_t dl) {
  const bool ta = desc->trans_a == CUBLAS_OP_T, tb = desc->trans_b == CUBLAS_OP_T;
  const uint64_t m = ta ? al->cols : al->rows, k = ta ? al->rows : al->cols;
  const uint64_t n = tb ? bl->rows : bl->cols, kb = tb ? bl->cols : bl->rows;
  return k == kb && cl->rows == m && cl->cols == n && dl->rows == m && dl->cols == n &&
         al->batch == bl->batch && al->batch == cl->batch && al->batch == dl->batch;
}

}  // namespace

const char* cublasGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "success (emulated)" : "failure (emulated)";
}
const char* cublasLtGetStatusString(cublasStatus_t status) { return cublasGetStatusString(status); }

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  static cublasLtContext context;
  *handle = &context;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  if (scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  *desc = new cublasLtMatmulDescOpaque_t{compute};
  ++g_counts.descriptors_made;
  ++g_counts.descriptors_live;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  --g_counts.descriptors_live;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attribute,
                                              const void* value, size_t bytes) {
  if (attribute == CUBLASLT_MATMUL_DESC_TRANSA) return read_attribute(desc->trans_a, value, bytes);
  if (attribute == CUBLASLT_MATMUL_DESC_TRANSB) return read_attribute(desc->trans_b, value, bytes);
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  if (!supported(type) || ld < static_cast<int64_t>(rows)) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = new cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld};
  ++g_counts.descriptors_made;
  ++g_counts.descriptors_live;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  --g_counts.descriptors_live;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout,
                                                cublasLtMatrixLayoutAttribute_t attribute,
                                                const void* value, size_t bytes) {
  if (attribute == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT)
    return read_attribute(layout->batch, value, bytes);
  if (attribute == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET)
    return read_attribute(layout->batch_stride, value, bytes);
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* preference) {
  *preference = new cublasLtMatmulPreferenceOpaque_t;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t preference) {
  delete preference;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t,
                                                    cublasLtMatmulPreferenceAttributes_t attribute,
                                                    const void*, size_t bytes) {
  const size_t expected =
      attribute == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES ? sizeof(uint64_t) : sizeof(uint32_t);
  return bytes == expected ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t* results,
                                              int* returned) {
  if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  ++g_counts.heuristic_queries;
  results[0] = {};
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoCheck(cublasLtHandle_t, cublasLtMatmulDesc_t desc,
                                       cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                       cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                       const cublasLtMatmulAlgo_t*,
                                       cublasLtMatmulHeuristicResult_t* result) {
  ++g_counts.algo_checks;
  *result = {};
  return fits(desc, a, b, c, d) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

EmulatedCublasLtCounts emulated_cublaslt_counts() { return g_counts; }

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha_ptr,
                              const void* a, cublasLtMatrixLayout_t al, const void* b,
                              cublasLtMatrixLayout_t bl, const void* beta_ptr, const void* c,
                              cublasLtMatrixLayout_t cl, void* d, cublasLtMatrixLayout_t dl,
                              const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t) {
  if (!fits(desc, al, bl, cl, dl)) return CUBLAS_STATUS_INVALID_VALUE;
  emu::run_deferred_copies();  // the GEMM orders after what the stream queued
  const bool ta = desc->trans_a == CUBLAS_OP_T, tb = desc->trans_b == CUBLAS_OP_T;
  const uint64_t m = ta ? al->cols : al->rows, k = ta ? al->rows : al->cols;
  const uint64_t n = tb ? bl->rows : bl->cols;
  const float alpha = *static_cast<const float*>(alpha_ptr);
  const float beta = *static_cast<const float*>(beta_ptr);
  const bool round_tf32 = desc->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && al->type == CUDA_R_32F;
  const auto input = [&](float x) { return round_tf32 ? tf32(x) : x; };
  for (int32_t batch = 0; batch < al->batch; ++batch) {
    for (uint64_t j = 0; j < n; ++j) {
      for (uint64_t i = 0; i < m; ++i) {
        float sum = 0;
        for (uint64_t p = 0; p < k; ++p) {
          const int64_t ai =
              batch * al->batch_stride + static_cast<int64_t>(ta ? p + i * al->ld : i + p * al->ld);
          const int64_t bi =
              batch * bl->batch_stride + static_cast<int64_t>(tb ? j + p * bl->ld : p + j * bl->ld);
          sum += input(load(a, al->type, ai)) * input(load(b, bl->type, bi));
        }
        const int64_t ci = batch * cl->batch_stride + static_cast<int64_t>(i + j * cl->ld);
        const int64_t di = batch * dl->batch_stride + static_cast<int64_t>(i + j * dl->ld);
        float value = alpha * sum;
        if (beta != 0) value += beta * load(c, cl->type, ci);
        store(d, dl->type, di, value);
      }
    }
  }
  emu::check_guards("cublasLtMatmul");
  return CUBLAS_STATUS_SUCCESS;
}
