// The routed experts (run concurrently, activations transposed per expert) against the dense
// SwiGLU FFN run on each expert's rows, in f32 and bf16, forward and backward; and their results
// do not depend on the thread count.
#include <omp.h>

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "layers/experts.h"
#include "tests/support/gradcheck.h"
#include "tests/support/tolerance.h"

namespace moe {
namespace {

using testing::random_tensor;

constexpr int64_t kDModel = 16, kHidden = 24;
const std::vector<int64_t> kCounts{17, 0, 40, 3, 1};  // an idle expert, a one-row one
constexpr int64_t kRows = 61;

struct Result {
  Tensor y, dx, grads;
};

// Experts "e" on x with counts kCounts, weights from seed 7: the layer itself, or (dense) each
// expert's rows through ffn_forward / ffn_backward with that expert's weights.
Result run(DType dtype, bool dense) {
  ParameterStore store(DType::f32);
  if (dtype == DType::bf16) store.set_compute_dtype(DType::bf16);
  const Experts experts(store, "e", static_cast<int>(kCounts.size()), kDModel, kHidden, 0.3);
  store.allocate(7);
  Stream stream;
  const Tensor x = random_tensor({kRows, kDModel}, dtype, 1);
  const Tensor dy = random_tensor({kRows, kDModel}, dtype, 2);
  Result r{Tensor::empty({kRows, kDModel}, dtype), Tensor::empty({kRows, kDModel}, dtype), {}};
  if (dense) {
    int64_t first = 0;
    for (size_t e = 0; e < kCounts.size(); first += kCounts[e++]) {
      if (kCounts[e] == 0) continue;
      FfnSaved saved = ffn_saved_for(kCounts[e], kHidden, dtype);
      Tensor y = r.y.narrow(first, kCounts[e]), dx = r.dx.narrow(first, kCounts[e]);
      const Tensor xe = x.narrow(first, kCounts[e]);
      ffn_forward(xe, experts.expert(static_cast<int>(e)), saved, y, stream);
      ffn_backward(xe, dy.narrow(first, kCounts[e]), experts.expert(static_cast<int>(e)), saved, dx,
                   false, stream);
    }
  } else {
    ExpertsSaved saved;
    experts.forward(x, kCounts, saved, r.y, stream);
    experts.backward(x, kCounts, dy, saved, r.dx, stream);
  }
  r.grads = store.grads().clone();
  return r;
}

TEST(Experts, EveryExpertIsTheDenseFfnOnItsRows) {
  // f32: the same sums in another order. bf16: both round each op's output once, so an output
  // may land one bf16 step (2^-8 relative) away, and that difference travels on through backward.
  for (const auto& [dtype, tol] : {std::pair{DType::f32, 2e-6}, std::pair{DType::bf16, 3e-2}}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Result got = run(dtype, false), expected = run(dtype, true);
    EXPECT_TRUE(testing::all_close(got.y, expected.y, tol, tol));
    EXPECT_TRUE(testing::all_close(got.dx, expected.dx, tol, tol));
    EXPECT_TRUE(testing::all_close(got.grads, expected.grads, tol, tol));
  }
}

TEST(Experts, ResultsDoNotDependOnTheThreadCount) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Result one = run(DType::f32, false);
  omp_set_num_threads(3);
  const Result three = run(DType::f32, false);
  omp_set_num_threads(threads);
  EXPECT_TRUE(testing::all_close(one.y, three.y, 0, 0));
  EXPECT_TRUE(testing::all_close(one.dx, three.dx, 0, 0));
  EXPECT_TRUE(testing::all_close(one.grads, three.grads, 0, 0));
}

// FSSDP copies still in flight: forward runs the present experts, waits, then the arriving ones.
// The copies' buffers hold NaN until wait() writes the owner's weights into them, so a copy run
// before the wait gives NaN rows; done right, y equals the run with every weight present. y
// starts as NaN too, and at the wait the present experts' rows must be done already (the work
// the transfer hides behind) and the arriving ones' not begun.
TEST(Experts, CopiesInFlightRunAfterTheirWait) {
  ParameterStore store(DType::f32);
  const Experts experts(store, "e", static_cast<int>(kCounts.size()), kDModel, kHidden, 0.3);
  store.allocate(7);
  Stream stream;
  const Tensor x = random_tensor({kRows, kDModel}, DType::f32, 1);
  std::vector<FfnWeights> present, held;
  CopiesInFlight in_flight;
  for (int e = 0; e < static_cast<int>(kCounts.size()); ++e) {
    present.push_back(experts.expert(e));
    const bool copy = e % 2 == 0;  // experts 0, 2 (the busiest) and 4 arrive
    in_flight.arriving.push_back(copy);
    FfnWeights w = present.back();
    if (copy)
      for (Tensor* t : {&w.w_gate, &w.w_up, &w.w_down}) {
        *t = Tensor::empty(t->shape(), DType::f32);
        ops::fill(*t, std::nan(""), stream);
      }
    held.push_back(w);
  }
  Tensor expected = Tensor::empty({kRows, kDModel}, DType::f32);
  Tensor got = Tensor::empty({kRows, kDModel}, DType::f32);
  ops::fill(got, std::nan(""), stream);
  int waits = 0;
  in_flight.wait = [&] {
    ++waits;
    int64_t first = 0;
    for (size_t e = 0; e < kCounts.size(); first += kCounts[e++])
      for (int64_t r = first; r < first + kCounts[e]; ++r)
        EXPECT_EQ(std::isnan(got.data<float>()[r * kDModel]), bool(in_flight.arriving[e]))
            << "expert " << e << ", row " << r << " at the wait";
    for (size_t e = 0; e < held.size(); ++e)
      if (in_flight.arriving[e]) {
        ops::copy(present[e].w_gate, held[e].w_gate, stream);
        ops::copy(present[e].w_up, held[e].w_up, stream);
        ops::copy(present[e].w_down, held[e].w_down, stream);
      }
  };
  ExpertsSaved saved_expected, saved_got;
  experts.forward(x, kCounts, saved_expected, expected, stream, ExpertsImpl::grouped, &present);
  experts.forward(x, kCounts, saved_got, got, stream, ExpertsImpl::grouped, &held, &in_flight);
  EXPECT_EQ(waits, 1);
  EXPECT_TRUE(testing::all_close(got, expected, 0, 0));
}

}  // namespace
}  // namespace moe
