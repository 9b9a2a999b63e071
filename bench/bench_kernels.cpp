// CPU kernel benchmarks, each side by side with its reference in the same run:
// - matmul through ops:: (validation + dispatch) against a bare cblas_sgemm call (the ceiling), on
//   the GEMM shapes of the quickstart model's projections;
// - blocked causal attention forward and backward, reported as achieved GFLOP/s (4 T^2/2 hd flops
//   per head forward) so they can be compared with the GEMM ceiling.
// Run: build/bench/bench_kernels --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <cblas.h>

#include "kernels/ops.h"

namespace moe {
namespace {

Tensor filled(Shape shape, double value) {
  Tensor t = Tensor::empty(shape, DType::f32);
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

struct AttentionInputs {
  Tensor q, k, v, out, lse, dq, dk, dv;
  AttentionInputs(int64_t batch, int64_t seq, int64_t heads, int64_t head_dim)
      : q(filled({batch, seq, heads, head_dim}, 0.1)),
        k(filled({batch, seq, heads, head_dim}, 0.2)),
        v(filled({batch, seq, heads, head_dim}, 0.3)),
        out(filled({batch, seq, heads, head_dim}, 0)),
        lse(filled({batch, heads, seq}, 0)),
        dq(filled(q.shape(), 0)),
        dk(filled(k.shape(), 0)),
        dv(filled(v.shape(), 0)) {}
};

void set_attention_counters(benchmark::State& state, double passes) {
  const double batch = 8, seq = static_cast<double>(state.range(0)), heads = 4, head_dim = 32;
  const double forward_flops = 4.0 * batch * heads * (seq * seq / 2) * head_dim;
  state.counters["GFLOP/s"] =
      benchmark::Counter(passes * forward_flops, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

void BM_AttentionForward(benchmark::State& state) {
  AttentionInputs in(8, state.range(0), 4, 32);
  Stream stream;
  for (auto _ : state) ops::attention_forward(in.q, in.k, in.v, 0.17f, in.out, in.lse, stream);
  set_attention_counters(state, 1.0);
}

void BM_AttentionBackward(benchmark::State& state) {
  AttentionInputs in(8, state.range(0), 4, 32);
  Stream stream;
  ops::attention_forward(in.q, in.k, in.v, 0.17f, in.out, in.lse, stream);
  for (auto _ : state)
    ops::attention_backward(in.out, in.q, in.k, in.v, in.out, in.lse, 0.17f, in.dq, in.dk, in.dv,
                            stream);
  set_attention_counters(state,
                         2.5);  // backward does 2.5x the forward's matmul work (flash-attn 2)
}

BENCHMARK(BM_AttentionForward)->Arg(128)->Arg(512);
BENCHMARK(BM_AttentionBackward)->Arg(128)->Arg(512);

}  // namespace
}  // namespace moe

BENCHMARK_MAIN();
