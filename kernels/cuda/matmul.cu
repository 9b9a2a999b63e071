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
//   stream.
// - A problem (dtypes, compute type, flags, sizes, pointer alignment, beta == 0) gets a plan once:
//   its operation and layout descriptors and its algorithm, reused by every later call. Expert
//   GEMMs change m (and k in the weight gradients) with the routing, so the plans are bounded
//   (kMatmulPlans; when full they are all dropped and remade as needed), and the algorithm comes
//   from a second cache keyed by bucketed sizes (each size rounded up to a quarter of its power
//   of two): the heuristic is asked once per bucket, and a bucket's algorithm is used for a new
//   size when cublasLtMatmulAlgoCheck accepts it there (otherwise that size asks for its own).
//   The heuristic may use the whole workspace.
// - Batched (3-D) products are one strided-batched call.
// - k == 0 is an empty sum: c = beta * c without calling cuBLAS.
// - Backward is two matmuls (kernels/matmul_adjoint.h).
#include <cublasLt.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
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

// A problem's descriptors and algorithm, made once (see the header).
struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

using PlanKey = std::pair<int, ProblemKey>;  // device, problem

struct Registry {
  std::mutex mutex;
  std::map<int, DeviceContext> devices;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
  std::map<PlanKey, cublasLtMatmulAlgo_t> bucket_algorithms;  // sizes bucketed
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

// Owns a heuristic query's preference.
struct Preference {
  cublasLtMatmulPreference_t handle = nullptr;
  Preference() { MOE_CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&handle)); }
  Preference(const Preference&) = delete;
  Preference& operator=(const Preference&) = delete;
  ~Preference() { cublasLtMatmulPreferenceDestroy(handle); }
};

// x rounded up to a quarter of its power of two: 300 -> 320, 1000 -> 1024, 5 -> 5.
int64_t bucket(int64_t x) {
  int64_t power = 1;
  while (power * 2 <= x) power *= 2;
  const int64_t step = std::max<int64_t>(power / 4, 1);
  return (x + step - 1) / step * step;
}

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

// The heuristic's algorithm for the plan's problem into plan.algo; false when it has none.
bool ask_heuristic(cublasLtHandle_t handle, Plan& plan, int alignment_a, int alignment_b,
                   int alignment_c) {
  Preference preference;
  const size_t workspace = kWorkspaceBytes;
  MOE_CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(
      preference.handle, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
  // cuBLAS sees b first (see the header): its "A" alignment is our b's.
  set_alignment(preference.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_b);
  set_alignment(preference.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_a);
  set_alignment(preference.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_c);
  set_alignment(preference.handle, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_c);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  MOE_CUBLASLT_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, plan.op, plan.b, plan.a, plan.c, plan.c,
                                                    preference.handle, 1, &result, &found));
  plan.algo = result.algo;
  return found > 0;
}

// Whether cuBLASLt runs the plan's problem with algo within our workspace.
bool accepts(cublasLtHandle_t handle, const Plan& plan, const cublasLtMatmulAlgo_t& algo) {
  cublasLtMatmulHeuristicResult_t result{};
  return cublasLtMatmulAlgoCheck(handle, plan.op, plan.b, plan.a, plan.c, plan.c, &algo, &result) ==
             CUBLAS_STATUS_SUCCESS &&
         result.workspaceSize <= kWorkspaceBytes;
}

// The plan of c = op(a) op(b) (cached; see the header).
const Plan& plan_for(DeviceContext& ctx, int device, const Tensor& a, const Tensor& b,
                     const Tensor& c, bool trans_a, bool trans_b, float beta) {
  const int r = a.ndim() - 2;
  const int64_t batch = r ? a.dim(0) : 1;
  const int64_t m = c.dim(r), n = c.dim(r + 1), k = trans_a ? a.dim(r) : a.dim(r + 1);
  const cublasComputeType_t compute = compute_type(a.dtype());
  const int alignment_a = alignment_of(a.raw()), alignment_b = alignment_of(b.raw()),
            alignment_c = alignment_of(c.raw());
  const ProblemKey key{a.dtype(), c.dtype(), compute,     trans_a,     trans_b,     batch,    m,
                       n,         k,         alignment_a, alignment_b, alignment_c, beta == 0};
  Registry& reg = registry();
  if (auto found = reg.plans.find({device, key}); found != reg.plans.end()) return *found->second;
  auto made = std::make_unique<Plan>();  // enters the cache only when complete
  Plan& plan = *made;
  MOE_CUBLASLT_CHECK(cublasLtMatmulDescCreate(&plan.op, compute, CUDA_R_32F));
  // cuBLAS sees b first: its "A" is our b, its "B" is our a.
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  MOE_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                    sizeof(op_first)));
  MOE_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB,
                                                    &op_second, sizeof(op_second)));
  describe(&plan.b, b.dtype(), b.dim(r), b.dim(r + 1), batch);
  describe(&plan.a, a.dtype(), a.dim(r), a.dim(r + 1), batch);
  describe(&plan.c, c.dtype(), m, n, batch);

  ProblemKey bucketed = key;
  std::get<5>(bucketed) = bucket(batch);
  std::get<6>(bucketed) = bucket(m);
  std::get<7>(bucketed) = bucket(n);
  std::get<8>(bucketed) = bucket(k);
  auto known = reg.bucket_algorithms.find({device, bucketed});
  if (known != reg.bucket_algorithms.end() && accepts(ctx.handle, plan, known->second)) {
    plan.algo = known->second;
  } else {
    MOE_CHECK(ask_heuristic(ctx.handle, plan, alignment_a, alignment_b, alignment_c),
              "matmul: cuBLASLt has no algorithm for ", dtype_name(a.dtype()), " x ",
              dtype_name(b.dtype()), " -> ", dtype_name(c.dtype()), " of ", m, "x", k, " by ", k,
              "x", n, " (batch ", batch, ")");
    reg.bucket_algorithms[{device, bucketed}] = plan.algo;
  }
  if (reg.plans.size() >= kMatmulPlans) reg.plans.clear();
  return *(reg.plans[{device, key}] = std::move(made));
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

  const Plan& plan = plan_for(ctx, device, a, b, c, trans_a, trans_b, beta);
  MOE_CUBLASLT_CHECK(cublasLtMatmul(ctx.handle, plan.op, &alpha, b.raw(), plan.b, a.raw(), plan.a,
                                    &beta, c.raw(), plan.c, c.raw(), plan.c, &plan.algo,
                                    ctx.workspace.raw(), kWorkspaceBytes, stream_of(stream)));
}

void matmul_backward(const Tensor& a, const Tensor& b, const Tensor& dc, Tensor* da, Tensor* db,
                     bool trans_a, bool trans_b, Stream& stream) {
  ops::matmul_adjoint(matmul, a, b, dc, da, db, trans_a, trans_b, stream);
}

}  // namespace moe::cuda
