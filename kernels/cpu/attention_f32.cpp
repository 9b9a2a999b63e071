// Causal grouped-query attention in f32 on GEMM tiles (FlashAttention-2 on the CPU): the f32 path
// of kernels/cpu/attention.cpp (which keeps the double-precision loops for f64), and of bf16 on
// its inputs widened to f32.
// - Tiles of kTile queries and kTile keys, both starting at multiples of kTile: a query tile sees
//   key tiles 0..itself, only the diagonal one is masked, and every row sees a key in each.
// - A query tile stacks the tile's rows of all the query heads of one kv group (G = Hq / Hkv)
//   into one matrix of G * rows rows, head by head, so each K and V tile is multiplied once per
//   group. The stacked rows are copied once per call (q; for backward also dout, lse and
//   delta = rowsum(dout * out)) into contiguous tiles; K, V and the gradients are read and
//   written in place in [B, T, H, hd] through the row stride H * hd.
// - Scores are computed transposed, S^T = K Q^T (keys x stacked rows), so the per-row softmax
//   statistics run along a contiguous row of S^T and their loops vectorise with no reductions;
//   P V and dS K read S^T through cblas' transpose flag. exp is exp_f32.h's vectorisable one.
// - Forward: per (batch, kv head, query tile) task, online softmax over the key tiles (running
//   max and sum per row, the accumulator rescaled as the max grows); out = acc / sum and
//   lse = max + log(sum).
// - Backward recomputes P = exp(S - lse) and dS = P (dP - delta), dP = dout V^T, in two passes that
//   each give every output row a single writer, so it is deterministic and has no atomics (as
//   kernels/cuda/attention.cu): a dq pass over (batch, kv head, query tile) walking key tiles
//   (dQ += dS K: 3 GEMMs a tile pair), and a dk/dv pass over (batch, kv head, key tile) walking
//   query tiles (dV += P^T dout, dK += dS^T Q: 4 GEMMs). 7 GEMMs where FlashAttention-2 with
//   atomic dq has 5: the price of determinism.
// - Tasks are independent and each sums in a fixed order, so results do not depend on the OpenMP
//   schedule (dynamic, longest tasks first) nor on the thread count. cblas_sgemm is called inside
//   the parallel region: Debian's OpenMP build of OpenBLAS (0.3.21) then runs each call on its
//   calling thread and starts no threads of its own (checked: a 1024^3 sgemm from each thread of a
//   2-thread region leaves the process at 2 threads).
// - kTile = 64: 128 was no faster at T = 1024 and slower at T <= 256, where the diagonal tiles'
//   masked half is a larger share of the work.
#include "kernels/cpu/attention_f32.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/exp_f32.h"

namespace moe::cpu {

namespace {

constexpr int64_t kTile = 64;  // queries per query tile and keys per key tile

// The elementwise loops over score tiles are compiled for AVX-512, AVX2 and the baseline (SSE2),
// the best chosen when the library loads: at SSE2 width they were half the forward's time. Each
// element's arithmetic is the same in every clone (no FMA contraction under -std=c++20), so results
// do not depend on which one runs.
#define SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Dims {
  int64_t batch, seq, q_heads, kv_heads, head_dim;
  int64_t group() const { return q_heads / kv_heads; }
  int64_t tiles() const { return (seq + kTile - 1) / kTile; }
  int64_t kv_stride() const { return kv_heads * head_dim; }
};

Dims attention_dims(const Tensor& q, const Tensor& k) {
  return {q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3)};
}

// Rows [t0, t0 + rows) of kv head kv of batch entry b: keys, or the stacked queries of the group.
struct Tile {
  int64_t b, kv, t0, rows;
};

// Tile number index of the query or key rows of (b, kv).
Tile tile_of(const Dims& d, int64_t b, int64_t kv, int64_t index) {
  return {b, kv, index * kTile, std::min(kTile, d.seq - index * kTile)};
}

// The first stacked row of a query tile: the (b, kv) slab holds seq * G rows, and the tiles
// before this one are full.
int64_t stacked_offset(const Dims& d, const Tile& t) {
  return ((t.b * d.kv_heads + t.kv) * d.seq + t.t0) * d.group();
}

// Calls fn(stacked row r, element offset of its [B, T, Hq, hd] row, index of its [B, Hq, T]
// statistic) for the G * rows rows of a query tile, head by head.
template <typename Fn>
void for_each_stacked_row(const Dims& d, const Tile& t, Fn fn) {
  for (int64_t g = 0; g < d.group(); ++g) {
    const int64_t h = t.kv * d.group() + g;
    for (int64_t i = 0; i < t.rows; ++i)
      fn(g * t.rows + i, ((t.b * d.seq + t.t0 + i) * d.q_heads + h) * d.head_dim,
         (t.b * d.q_heads + h) * d.seq + t.t0 + i);
  }
}

template <typename Fn>
void for_each_tile(const Dims& d, Fn fn) {
#pragma omp parallel for schedule(dynamic)
  for (int64_t task = 0; task < d.batch * d.kv_heads * d.tiles(); ++task)
    fn(task / d.tiles() / d.kv_heads, task / d.tiles() % d.kv_heads, task % d.tiles());
}

// Calls fill(stacked row index, element offset of its [B, T, Hq, hd] row, index of its [B, Hq, T]
// statistic) for every query row, in parallel: how the stacked copies are made.
template <typename Fill>
void for_each_query_row(const Dims& d, Fill fill) {
  for_each_tile(d, [&](int64_t b, int64_t kv, int64_t index) {
    const Tile t = tile_of(d, b, kv, index);
    const int64_t first = stacked_offset(d, t);
    for_each_stacked_row(d, t,
                         [&](int64_t r, int64_t row, int64_t stat) { fill(first + r, row, stat); });
  });
}

// The key (or value) rows of a key tile: element (j, c) at [j * kv_stride() + c].
const float* key_rows(const float* x, const Dims& d, const Tile& t) {
  return x + ((t.b * d.seq + t.t0) * d.kv_heads + t.kv) * d.head_dim;
}

// c[m, n] = alpha op(a) op(b) + beta c, row-major.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Sets the entries of the diagonal tile's S^T [keys, G * rows] where key j lies after query i.
void mask_future(float* st, const Dims& d, int64_t rows, float value) {
  const int64_t cols = d.group() * rows;
  for (int64_t j = 1; j < rows; ++j)
    for (int64_t g = 0; g < d.group(); ++g) std::fill_n(st + j * cols + g * rows, j, value);
}

// --- forward --------------------------------------------------------------------------------

// Per stacked row: the running max and sum of exp(score - max), and the unnormalised output.
struct OnlineSoftmax {
  std::vector<float> max, sum, acc, new_max, rescale;
  OnlineSoftmax(int64_t rows, int64_t head_dim)
      : max(rows, -kInf), sum(rows), acc(rows * head_dim), new_max(rows), rescale(rows) {}
};

// Turns the scores st [keys, rows] into exp(score - max), the statistics and acc [rows, hd]
// updated for the new max first.
SIMD_CLONES void absorb_scores(float* __restrict st, int64_t keys, int64_t rows, int64_t hd,
                               float* __restrict max, float* __restrict sum, float* __restrict acc,
                               float* __restrict new_max, float* __restrict rescale) {
  std::copy_n(max, rows, new_max);
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t r = 0; r < rows; ++r)
      new_max[r] = select_f32(st[j * rows + r] > new_max[r], st[j * rows + r], new_max[r]);
  for (int64_t r = 0; r < rows; ++r) {
    rescale[r] = exp_f32(max[r] - new_max[r]);
    sum[r] *= rescale[r];
    max[r] = new_max[r];
  }
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t r = 0; r < rows; ++r) {
      st[j * rows + r] = exp_f32(st[j * rows + r] - max[r]);
      sum[r] += st[j * rows + r];
    }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < hd; ++c) acc[r * hd + c] *= rescale[r];
}

void forward_tile(const Dims& d, const float* q_stacked, const float* k, const float* v,
                  float scale, const Tile& qt, float* out, float* lse) {
  const int64_t hd = d.head_dim, rows = d.group() * qt.rows;
  const float* q = q_stacked + stacked_offset(d, qt) * hd;
  OnlineSoftmax softmax(rows, hd);
  std::vector<float> st(static_cast<size_t>(kTile * rows));
  for (int64_t s0 = 0; s0 <= qt.t0; s0 += kTile) {
    const Tile kt{qt.b, qt.kv, s0, std::min(kTile, d.seq - s0)};
    gemm(false, true, kt.rows, rows, hd, scale, key_rows(k, d, kt), d.kv_stride(), q, hd, 0.0f,
         st.data(), rows);
    if (s0 == qt.t0) mask_future(st.data(), d, qt.rows, -kInf);
    absorb_scores(st.data(), kt.rows, rows, hd, softmax.max.data(), softmax.sum.data(),
                  softmax.acc.data(), softmax.new_max.data(), softmax.rescale.data());
    gemm(true, false, rows, hd, kt.rows, 1.0f, st.data(), rows, key_rows(v, d, kt), d.kv_stride(),
         1.0f, softmax.acc.data(), hd);
  }
  for_each_stacked_row(d, qt, [&](int64_t r, int64_t row, int64_t stat) {
    for (int64_t c = 0; c < hd; ++c) out[row + c] = softmax.acc[r * hd + c] / softmax.sum[r];
    lse[stat] = softmax.max[r] + std::log(softmax.sum[r]);
  });
}

// --- backward -------------------------------------------------------------------------------

// The stacked query-side inputs of backward.
struct StackedQueries {
  std::vector<float> q, dout, lse, delta;
};

// x[j, r] = exp(x[j, r] - lse[r]) over x [keys, rows].
SIMD_CLONES void exp_minus(float* __restrict x, int64_t keys, int64_t rows,
                           const float* __restrict lse) {
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t r = 0; r < rows; ++r) x[j * rows + r] = exp_f32(x[j * rows + r] - lse[r]);
}

// x[j, r] = p[j, r] (x[j, r] - delta[r]) over x [keys, rows].
SIMD_CLONES void times_minus(float* __restrict x, const float* __restrict p, int64_t keys,
                             int64_t rows, const float* __restrict delta) {
  for (int64_t j = 0; j < keys; ++j)
    for (int64_t r = 0; r < rows; ++r)
      x[j * rows + r] = p[j * rows + r] * (x[j * rows + r] - delta[r]);
}

// P^T [keys, G * rows] of a (key tile, query tile) pair into p.
void probabilities(const Dims& d, const StackedQueries& sq, const float* k, float scale,
                   const Tile& kt, const Tile& qt, float* p) {
  const int64_t hd = d.head_dim, rows = d.group() * qt.rows, first = stacked_offset(d, qt);
  gemm(false, true, kt.rows, rows, hd, scale, key_rows(k, d, kt), d.kv_stride(),
       sq.q.data() + first * hd, hd, 0.0f, p, rows);
  exp_minus(p, kt.rows, rows, sq.lse.data() + first);
  if (kt.t0 == qt.t0) mask_future(p, d, qt.rows, 0.0f);
}

// dS^T = P^T (dP^T - delta) into dp, with dP^T = V dout^T.
void score_gradients(const Dims& d, const StackedQueries& sq, const float* v, const Tile& kt,
                     const Tile& qt, const float* p, float* dp) {
  const int64_t hd = d.head_dim, rows = d.group() * qt.rows, first = stacked_offset(d, qt);
  gemm(false, true, kt.rows, rows, hd, 1.0f, key_rows(v, d, kt), d.kv_stride(),
       sq.dout.data() + first * hd, hd, 0.0f, dp, rows);
  times_minus(dp, p, kt.rows, rows, sq.delta.data() + first);
}

void dq_tile(const Dims& d, const StackedQueries& sq, const float* k, const float* v, float scale,
             const Tile& qt, float* dq) {
  const int64_t hd = d.head_dim, rows = d.group() * qt.rows;
  std::vector<float> p(static_cast<size_t>(kTile * rows)), ds(p.size()), acc(rows * hd);
  for (int64_t s0 = 0; s0 <= qt.t0; s0 += kTile) {
    const Tile kt{qt.b, qt.kv, s0, std::min(kTile, d.seq - s0)};
    probabilities(d, sq, k, scale, kt, qt, p.data());
    score_gradients(d, sq, v, kt, qt, p.data(), ds.data());
    gemm(true, false, rows, hd, kt.rows, 1.0f, ds.data(), rows, key_rows(k, d, kt), d.kv_stride(),
         1.0f, acc.data(), hd);
  }
  for_each_stacked_row(d, qt, [&](int64_t r, int64_t row, int64_t) {
    for (int64_t c = 0; c < hd; ++c) dq[row + c] = scale * acc[r * hd + c];
  });
}

void dkdv_tile(const Dims& d, const StackedQueries& sq, const float* k, const float* v, float scale,
               const Tile& kt, float* dk, float* dv) {
  const int64_t hd = d.head_dim, most_rows = d.group() * kTile;
  std::vector<float> p(static_cast<size_t>(kTile * most_rows)), ds(p.size());
  std::vector<float> dk_acc(kt.rows * hd), dv_acc(kt.rows * hd);
  for (int64_t t0 = kt.t0; t0 < d.seq; t0 += kTile) {
    const Tile qt{kt.b, kt.kv, t0, std::min(kTile, d.seq - t0)};
    const int64_t rows = d.group() * qt.rows, first = stacked_offset(d, qt);
    probabilities(d, sq, k, scale, kt, qt, p.data());
    gemm(false, false, kt.rows, hd, rows, 1.0f, p.data(), rows, sq.dout.data() + first * hd, hd,
         1.0f, dv_acc.data(), hd);
    score_gradients(d, sq, v, kt, qt, p.data(), ds.data());
    gemm(false, false, kt.rows, hd, rows, 1.0f, ds.data(), rows, sq.q.data() + first * hd, hd, 1.0f,
         dk_acc.data(), hd);
  }
  const int64_t first = ((kt.b * d.seq + kt.t0) * d.kv_heads + kt.kv) * hd;
  for (int64_t j = 0; j < kt.rows; ++j)
    for (int64_t c = 0; c < hd; ++c) {
      dk[first + j * d.kv_stride() + c] = scale * dk_acc[j * hd + c];
      dv[first + j * d.kv_stride() + c] = dv_acc[j * hd + c];
    }
}

}  // namespace

void attention_forward_f32(const Tensor& q, const Tensor& k, const Tensor& v, float softmax_scale,
                           Tensor& out, Tensor& lse) {
  const Dims d = attention_dims(q, k);
  const int64_t hd = d.head_dim;
  const float* pq = q.data<float>();
  float *pout = out.data<float>(), *plse = lse.data<float>();  // checked outside the threads
  std::vector<float> q_stacked(static_cast<size_t>(q.numel()));
  for_each_query_row(d, [&](int64_t i, int64_t row, int64_t) {
    std::copy_n(pq + row, hd, q_stacked.data() + i * hd);
  });
  for_each_tile(d, [&](int64_t b, int64_t kv, int64_t index) {
    forward_tile(d, q_stacked.data(), k.data<float>(), v.data<float>(), softmax_scale,
                 tile_of(d, b, kv, d.tiles() - 1 - index), pout, plse);
  });
}

void attention_backward_f32(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& out, const Tensor& lse, float softmax_scale, Tensor& dq,
                            Tensor& dk, Tensor& dv) {
  const Dims d = attention_dims(q, k);
  const int64_t hd = d.head_dim, rows = d.batch * d.seq * d.q_heads;
  const float *pq = q.data<float>(), *pdout = dout.data<float>(), *pout = out.data<float>();
  const float* plse = lse.data<float>();
  StackedQueries sq{std::vector<float>(static_cast<size_t>(q.numel())),
                    std::vector<float>(static_cast<size_t>(q.numel())),
                    std::vector<float>(static_cast<size_t>(rows)),
                    std::vector<float>(static_cast<size_t>(rows))};
  for_each_query_row(d, [&](int64_t i, int64_t row, int64_t stat) {
    std::copy_n(pq + row, hd, sq.q.data() + i * hd);
    std::copy_n(pdout + row, hd, sq.dout.data() + i * hd);
    sq.lse[i] = plse[stat];
    double delta = 0;
    for (int64_t c = 0; c < hd; ++c) delta += static_cast<double>(pdout[row + c]) * pout[row + c];
    sq.delta[i] = static_cast<float>(delta);
  });
  const float *pk = k.data<float>(), *pv = v.data<float>();
  for_each_tile(d, [&](int64_t b, int64_t kv, int64_t index) {
    dq_tile(d, sq, pk, pv, softmax_scale, tile_of(d, b, kv, d.tiles() - 1 - index),
            dq.data<float>());
  });
  for_each_tile(d, [&](int64_t b, int64_t kv, int64_t index) {
    dkdv_tile(d, sq, pk, pv, softmax_scale, tile_of(d, b, kv, index), dk.data<float>(),
              dv.data<float>());
  });
}

}  // namespace moe::cpu
