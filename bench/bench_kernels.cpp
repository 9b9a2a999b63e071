// CPU kernel benchmarks, each side by side with its reference in the same run:
// - matmul through ops:: (validation + dispatch) against a bare cblas_sgemm call (the ceiling), on
//   the GEMM shapes of the quickstart model's projections;
// - the q, k, v projections of one layer, forward and backward, as three GEMMs each (what
//   layers/attention.cpp runs) beside one GEMM over the three weights joined plus the copies that
//   split its output into q, k, v and join their gradients (issue 23's "one GEMM" option);
// - causal attention forward and backward, f32 (tiled GEMMs) beside f64 (the double loops f32 ran
//   before), reported as achieved GFLOP/s so they can be compared with the sgemm ceiling of a large
//   square product (BM_SgemmPeak).
// Run: build/bench/bench_kernels --benchmark_counters_tabular=true
#include <vector>

#include <benchmark/benchmark.h>
#include <cblas.h>

#include "kernels/ops.h"

namespace moe {
namespace {

Tensor filled(Shape shape, double value, DType dtype = DType::f32) {
  Tensor t = Tensor::empty(shape, dtype);
  Stream stream;
  ops::fill(t, value, stream);
  return t;
}

void set_gemm_counters(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_MatmulOps(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Tensor a = filled({m, k}, 0.5), w = filled({n, k}, 0.25), c = filled({m, n}, 0);
  Stream stream;
  for (auto _ : state) ops::matmul(a, w, c, false, true, 1.0f, 0.0f, stream);
  set_gemm_counters(state, m, n, k);
}

void BM_MatmulCblasReference(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Tensor a = filled({m, k}, 0.5), w = filled({n, k}, 0.25), c = filled({m, n}, 0);
  for (auto _ : state)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data<float>(), k,
                w.data<float>(), k, 0.0f, c.data<float>(), n);
  set_gemm_counters(state, m, n, k);
}

// Tokens x out x in: the quickstart model's QKV and expert up-projections and the expert
// down-projection's weight gradient shape, at 1024 tokens.
void gemm_shapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 384, 128})->Args({1024, 256, 128})->Args({256, 128, 1024});
}
BENCHMARK(BM_MatmulOps)->Apply(gemm_shapes);
BENCHMARK(BM_MatmulCblasReference)->Apply(gemm_shapes);

// The q, k, v projections at 1024 tokens, widths as the models have them: (d_model, q rows, k and
// v rows each) = (128, 128, 128) quickstart and (512, 512, 512) cpu-moe-100m. One iteration: the
// forward product, then the backward's input gradient and weight gradients.
struct ProjectionShape {
  int64_t d_model, q_rows, kv_rows;
};
constexpr ProjectionShape kProjectionShapes[] = {{128, 128, 128}, {512, 512, 512}};
constexpr int64_t kProjectionTokens = 1024;

void set_projection_counters(benchmark::State& state, const ProjectionShape& s) {
  const double rows = static_cast<double>(s.q_rows + 2 * s.kv_rows);
  state.counters["GFLOP/s"] = benchmark::Counter(3 * 2.0 * kProjectionTokens * rows * s.d_model,
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

void BM_QkvThreeGemms(benchmark::State& state) {
  const ProjectionShape& s = kProjectionShapes[state.range(0)];
  const int64_t n = kProjectionTokens, rows[3] = {s.q_rows, s.kv_rows, s.kv_rows};
  const Tensor x = filled({n, s.d_model}, 0.5);
  Tensor dx = filled({n, s.d_model}, 0);
  std::vector<Tensor> w, dw, y;
  for (int64_t r : rows) {
    w.push_back(filled({r, s.d_model}, 0.25));
    dw.push_back(filled({r, s.d_model}, 0));
    y.push_back(filled({n, r}, 0));
  }
  Stream stream;
  for (auto _ : state) {
    for (int i = 0; i < 3; ++i) ops::matmul(x, w[i], y[i], false, true, 1.0f, 0.0f, stream);
    for (int i = 0; i < 3; ++i) {
      ops::matmul(y[i], w[i], dx, false, false, 1.0f, i == 0 ? 0.0f : 1.0f, stream);
      ops::matmul(y[i], x, dw[i], true, false, 1.0f, 1.0f, stream);
    }
  }
  set_projection_counters(state, s);
}

void BM_QkvOneGemmAndCopies(benchmark::State& state) {
  const ProjectionShape& s = kProjectionShapes[state.range(0)];
  const int64_t n = kProjectionTokens, all = s.q_rows + 2 * s.kv_rows;
  const int64_t rows[3] = {s.q_rows, s.kv_rows, s.kv_rows};
  const Tensor x = filled({n, s.d_model}, 0.5), w = filled({all, s.d_model}, 0.25);
  Tensor dx = filled({n, s.d_model}, 0), dw = filled({all, s.d_model}, 0);
  Tensor y = filled({n, all}, 0), dy = filled({n, all}, 0);
  std::vector<Tensor> parts;
  for (int64_t r : rows) parts.push_back(filled({n, r}, 0));
  Stream stream;
  for (auto _ : state) {
    ops::matmul(x, w, y, false, true, 1.0f, 0.0f, stream);
    for (int64_t i = 0, col = 0; i < 3; col += rows[i++])
      ops::copy_columns(y, col, parts[i], 0, rows[i], stream);
    for (int64_t i = 0, col = 0; i < 3; col += rows[i++])
      ops::copy_columns(parts[i], 0, dy, col, rows[i], stream);
    ops::matmul(dy, w, dx, false, false, 1.0f, 0.0f, stream);
    ops::matmul(dy, x, dw, true, false, 1.0f, 1.0f, stream);
  }
  set_projection_counters(state, s);
}
BENCHMARK(BM_QkvThreeGemms)->ArgName("shape")->Arg(0)->Arg(1)->UseRealTime();
BENCHMARK(BM_QkvOneGemmAndCopies)->ArgName("shape")->Arg(0)->Arg(1)->UseRealTime();

// Causal attention forward and backward in f32 (the tiled GEMM path) and in f64 (the loops in
// double that f32 ran before it, and that f64 and bf16 still run), as achieved GFLOP/s: 4 B Hq
// T^2/2 hd flops forward, 2.5 times that backward (FlashAttention-2's count). Args: the head
// shape (0: the quickstart model's 4 heads of 32; 1: 8 query heads of 64 over 2 kv heads), T.
struct AttentionShape {
  int64_t batch, q_heads, kv_heads, head_dim;
};
constexpr AttentionShape kAttentionShapes[] = {{8, 4, 4, 32}, {4, 8, 2, 64}};

struct AttentionInputs {
  Tensor q, k, v, out, lse, dq, dk, dv;
  AttentionInputs(const AttentionShape& s, int64_t seq, DType dtype)
      : q(filled({s.batch, seq, s.q_heads, s.head_dim}, 0.1, dtype)),
        k(filled({s.batch, seq, s.kv_heads, s.head_dim}, 0.2, dtype)),
        v(filled({s.batch, seq, s.kv_heads, s.head_dim}, 0.3, dtype)),
        out(filled(q.shape(), 0, dtype)),
        lse(filled({s.batch, s.q_heads, seq}, 0, dtype)),
        dq(filled(q.shape(), 0, dtype)),
        dk(filled(k.shape(), 0, dtype)),
        dv(filled(v.shape(), 0, dtype)) {}
};

void set_attention_counters(benchmark::State& state, const AttentionShape& s, double passes) {
  const double seq = static_cast<double>(state.range(1));
  const double forward_flops = 4.0 * s.batch * s.q_heads * (seq * seq / 2) * s.head_dim;
  state.counters["GFLOP/s"] =
      benchmark::Counter(passes * forward_flops, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

template <DType kDType>
void BM_AttentionForward(benchmark::State& state) {
  const AttentionShape& s = kAttentionShapes[state.range(0)];
  AttentionInputs in(s, state.range(1), kDType);
  Stream stream;
  for (auto _ : state) ops::attention_forward(in.q, in.k, in.v, 0.17f, in.out, in.lse, stream);
  set_attention_counters(state, s, 1.0);
}

template <DType kDType>
void BM_AttentionBackward(benchmark::State& state) {
  const AttentionShape& s = kAttentionShapes[state.range(0)];
  AttentionInputs in(s, state.range(1), kDType);
  Stream stream;
  ops::attention_forward(in.q, in.k, in.v, 0.17f, in.out, in.lse, stream);
  for (auto _ : state)
    ops::attention_backward(in.out, in.q, in.k, in.v, in.out, in.lse, 0.17f, in.dq, in.dk, in.dv,
                            stream);
  set_attention_counters(state, s, 2.5);
}

void attention_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "T"})->ArgsProduct({{0, 1}, {128, 256, 512, 1024}});
}
BENCHMARK(BM_AttentionForward<DType::f32>)->Apply(attention_args)->UseRealTime();
BENCHMARK(BM_AttentionForward<DType::f64>)->Apply(attention_args)->UseRealTime();
BENCHMARK(BM_AttentionBackward<DType::f32>)->Apply(attention_args)->UseRealTime();
BENCHMARK(BM_AttentionBackward<DType::f64>)->Apply(attention_args)->UseRealTime();

// The machine's sgemm ceiling: one large square product on OpenBLAS's own threads.
void BM_SgemmPeak(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = filled({n, n}, 0.5), b = filled({n, n}, 0.25), c = filled({n, n}, 0);
  for (auto _ : state)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data<float>(), n,
                b.data<float>(), n, 0.0f, c.data<float>(), n);
  set_gemm_counters(state, n, n, n);
}
BENCHMARK(BM_SgemmPeak)->Arg(2048)->UseRealTime();

}  // namespace
}  // namespace moe

BENCHMARK_MAIN();
