// GEMM on CUDA through cuBLASLt: f32 x f32 -> f32 in full f32 arithmetic (CUBLAS_COMPUTE_32F, so
// results track the CPU oracle) or, while ops::set_matmul_tf32 is on, in TF32 on the tensor cores
// (CUBLAS_COMPUTE_32F_FAST_TF32: inputs rounded to 10 mantissa bits, f32 accumulation); and
// bf16 x bf16 -> bf16 or f32 with CUBLAS_COMPUTE_32F, which on bf16 inputs is the tensor-core path
// accumulating in f32 (the f32 output is how bf16 activations accumulate weight gradients into f32
// grads, beta 1). Rounding points (as kernels/cpu/matmul.cpp): bf16 products are exact in f32; the
// sum, alpha and beta * c are f32 (in the tensor cores' order and rounding, not OpenBLAS's, so the
// two backends agree to the accumulation's error, not bit for bit); a bf16 c is read widened and
// rounded once on store, an f32 c never rounds to bf16.
//
// Decisions:
// - Row-major c = op(a) op(b) is the column-major c^T = op(b)^T op(a)^T: cuBLAS gets b first and a
//   second, with the same transpose flags, and every matrix described as it is stored.
// - One cuBLASLt handle and one 32 MiB workspace per device, made on first use. The workspace is
//   shared by every GEMM of the device, which is safe because each rank runs its GEMMs on one
//   stream. The algorithm for a problem (dtypes, compute type, flags, sizes, pointer alignment,
//   beta == 0) is asked of the heuristic once and remembered; the heuristic may use the whole
//   workspace. Dense GEMMs repeat every step; expert GEMMs change m (and k in the weight
//   gradients) with the routing, so each new token count asks once more (bucketing sizes is a
//   measured optimisation still to make).
// - Batched (3-D) products are one strided-batched call.
// - k == 0 is an empty sum: c = beta * c without calling cuBLAS.
// - Backward is two matmuls (kernels/matmul_adjoint.h).
#include <cublasLt.h>

#include <atomic>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/launch.cuh"
#include "kernels/matmul_adjoint.h"

#define MOE_CUBLASLT_CHECK(expr) \
  MOE_CHECK_STATUS(::moe::DeviceError, expr, #expr, CUBLAS_STATUS_SUCCESS, cublasLtGetStatusString)

namespace moe::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

struct DeviceContext {
  cublasLtHandle_t handle = nullptr;
  Tensor workspace;
};

// A problem as the heuristic sees it.
using ProblemKey = std::tuple<DType, DType, cublasComputeType_t, bool, bool, int64_t, int64_t,
                              int64_t, int64_t, int, int, int, bool>;

std::atomic<bool> g_tf32{false};

// TF32 applies to f32 inputs only: bf16 inputs already take the tensor cores at full f32
// accumulation.
cublasComputeType_t compute_type(DType inputs) {
  return inputs == DType::f32 && g_tf32.load() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

struct Registry {
  std::mutex mutex;
  std::map<int, DeviceContext> devices;
  std::map<std::pair<int, ProblemKey>, cublasLtMatmulAlgo_t> algorithms;
};

Registry& registry() {
  static auto* instance = new Registry;  // never destroyed: see device.cu
  return *instance;
}

DeviceContext& context_for(int device) {
  DeviceContext& ctx = registry().devices[device];
  if (!ctx.handle) {  // the workspace first: a failed allocation leaves no half-made context
    ctx.workspace = Tensor::empty({static_cast<int64_t>(kWorkspaceBytes / 4)}, DType::i32,
                                  Device::cuda(device));
    MOE_CUBLASLT_CHECK(cublasLtCreate(&ctx.handle));
  }
  return ctx;
}

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::bf16:
      return CUDA_R_16BF;
    default:
      MOE_THROW(InputError, "matmul: dtype ", dtype_name(dtype),
                " is not supported on cuda (supported: f32, bf16 inputs; f32 or bf16 output)");
  }
}

int alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  int alignment = 16;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

// Owns the descriptors of one call.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~Descriptors() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// A column-major layout of a stored row-major [rows, cols] matrix, batched.
void describe(cublasLtMatrixLayout_t* layout, DType dtype, int64_t rows, int64_t cols,
              int64_t batch) {
  MOE_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(
      layout, cuda_type(dtype), static_cast<uint64_t>(cols), static_cast<uint64_t>(rows), cols));
  if (batch == 1) return;
  const int32_t count = static_cast<int32_t>(batch);
  const int64_t stride = rows * cols;
  MOE_CUBLASLT_CHECK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                      &count, sizeof(count)));
  MOE_CUBLASLT_CHECK(cublasLtMatrixLayoutSetAttribute(
      *layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
}

void set_alignment(cublasLtMatmulPreference_t preference,
                   cublasLtMatmulPreferenceAttributes_t attribute, int alignment) {
  const uint32_t bytes = static_cast<uint32_t>(alignment);
  MOE_CUBLASLT_CHECK(
      cublasLtMatmulPreferenceSetAttribute(preference, attribute, &bytes, sizeof(bytes)));
}

}  // namespace

void set_matmul_tf32(bool on) { g_tf32.store(on); }

void matmul(const Tensor& a, const Tensor& b, Tensor& c, bool trans_a, bool trans_b, float alpha,
            float beta, Stream& stream) {
  const int r = a.ndim() - 2;
  const int64_t batch = r ? a.dim(0) : 1;
  const int64_t m = c.dim(r), n = c.dim(r + 1);
  const int64_t k = trans_a ? a.dim(r) : a.dim(r + 1);
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {
    if (beta == 0)
      fill(c, 0.0, stream);
    else
      scale(c, beta, stream);
    return;
  }
  use_device(c);
  const int device = c.device().index;
  std::lock_guard lock(registry().mutex);
  DeviceContext& ctx = context_for(device);

  Descriptors d;
  const cublasComputeType_t compute = compute_type(a.dtype());
  MOE_CUBLASLT_CHECK(cublasLtMatmulDescCreate(&d.op, compute, CUDA_R_32F));
  // cuBLAS sees b first: its "A" is our b, its "B" is our a.
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  MOE_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                    sizeof(op_first)));
  MOE_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                    sizeof(op_second)));
  describe(&d.b, b.dtype(), b.dim(r), b.dim(r + 1), batch);
  describe(&d.a, a.dtype(), a.dim(r), a.dim(r + 1), batch);
  describe(&d.c, c.dtype(), m, n, batch);

  const ProblemKey key{a.dtype(),
                       c.dtype(),
                       compute,
                       trans_a,
                       trans_b,
                       batch,
                       m,
                       n,
                       k,
                       alignment_of(a.raw()),
                       alignment_of(b.raw()),
                       alignment_of(c.raw()),
                       beta == 0};
  auto found = registry().algorithms.find({device, key});
  if (found == registry().algorithms.end()) {
    MOE_CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&d.preference));
    const size_t workspace = kWorkspaceBytes;
    MOE_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
    set_alignment(d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(b.raw()));
    set_alignment(d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(a.raw()));
    set_alignment(d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_of(c.raw()));
    set_alignment(d.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_of(c.raw()));
    cublasLtMatmulHeuristicResult_t result{};
    int found_count = 0;
    MOE_CUBLASLT_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx.handle, d.op, d.b, d.a, d.c, d.c,
                                                      d.preference, 1, &result, &found_count));
    MOE_CHECK(found_count > 0, "matmul: cuBLASLt has no algorithm for ", dtype_name(a.dtype()),
              " x ", dtype_name(b.dtype()), " -> ", dtype_name(c.dtype()), " of ", m, "x", k,
              " by ", k, "x", n, " (batch ", batch, ")");
    found = registry().algorithms.emplace(std::pair{device, key}, result.algo).first;
  }
  MOE_CUBLASLT_CHECK(cublasLtMatmul(ctx.handle, d.op, &alpha, b.raw(), d.b, a.raw(), d.a, &beta,
                                    c.raw(), d.c, c.raw(), d.c, &found->second, ctx.workspace.raw(),
                                    kWorkspaceBytes, stream_of(stream)));
}

void matmul_backward(const Tensor& a, const Tensor& b, const Tensor& dc, Tensor* da, Tensor* db,
                     bool trans_a, bool trans_b, Stream& stream) {
  ops::matmul_adjoint(matmul, a, b, dc, da, db, trans_a, trans_b, stream);
}

}  // namespace moe::cuda
