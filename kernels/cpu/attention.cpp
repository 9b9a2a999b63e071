// Causal grouped-query attention on the CPU, flash-attention style. Query head h reads kv head
// h / (Hq / Hkv); query t sees keys 0..t. f32 tensors take the tiled GEMM path of
// attention_f32.cpp; this file's loops in double serve f64, the reference the f32 path is tested
// against.
// - Forward walks the keys in blocks of kBlock and keeps, per query row, a running max, a running
//   sum of exp(score - max) and the unnormalized output, rescaled whenever the max grows. Scratch
//   is O(kBlock * hd) per task, never T x T. Tasks are (batch, query head, query block) under a
//   dynamic schedule, because causal rows late in the sequence see more keys.
// - lse = max + log(sum) is saved per row, so backward recomputes p = exp(score - lse) block by
//   block without renormalizing.
// - Backward is flash-attention 2: D = rowsum(dout * out), ds = p * (dout . v - D). Tasks are
//   (batch, kv head) and loop over the query heads of the group inside, so each dk and dv row has
//   one writer: no atomics, no per-thread copies.
// - Dot products and per-block gradient sums are in double; the output tensors receive one addition
//   per key block (dq) or per query head (dk, dv).
// - bf16 q, k, v, out, dout (the oracle of kernels/cuda/attention.cu, which computes in f32): the
//   inputs are widened exactly to f32 and run through the f32 path, so the arithmetic is f32 as on
//   the GPU; lse stays f32. Rounding points: out, dq, dk and dv once each, from the f32 path's
//   results, as CUDA assigns each output once from its f32 registers.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/attention_f32.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/float_dispatch.h"

namespace moe::cpu {

namespace {

constexpr int64_t kBlock = 32;  // keys per block, and query rows per forward task

struct Dims {
  int64_t batch, seq, q_heads, kv_heads, head_dim;
  int64_t group() const { return q_heads / kv_heads; }
};

Dims attention_dims(const Tensor& q, const Tensor& k) {
  return {q.dim(0), q.dim(1), q.dim(2), k.dim(2), q.dim(3)};
}

// The seq rows of one head of a [B, T, H, hd] tensor.
template <typename P>
struct HeadRows {
  P* base;
  int64_t stride;
  P* operator[](int64_t t) const { return base + t * stride; }
};

template <typename P>
HeadRows<P> head_rows(P* data, const Dims& d, int64_t heads, int64_t b, int64_t h) {
  return {data + (b * d.seq * heads + h) * d.head_dim, heads * d.head_dim};
}

template <typename T>
double dot(const T* a, const T* b, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

template <typename T>
void add_scaled(double alpha, const T* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// The inputs of one query head: its q rows and the k, v rows of its kv head.
template <typename T>
struct HeadInputs {
  HeadRows<const T> q, k, v;
  int64_t head_dim;
  double scale;
};

// --- forward --------------------------------------------------------------------------------

struct RunningSoftmax {
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0;  // of exp(score - max)
};

// Folds keys [s0, s1) into the running softmax and output accumulator acc[hd] of query row t.
template <typename T>
void absorb_keys(const HeadInputs<T>& in, int64_t t, int64_t s0, int64_t s1, double* scores,
                 RunningSoftmax& row, double* acc) {
  double block_max = -std::numeric_limits<double>::infinity();
  for (int64_t s = s0; s < s1; ++s) {
    scores[s - s0] = in.scale * dot(in.q[t], in.k[s], in.head_dim);
    block_max = std::max(block_max, scores[s - s0]);
  }
  const double new_max = std::max(row.max, block_max);
  const double rescale = std::exp(row.max - new_max);
  row.sum *= rescale;
  for (int64_t d = 0; d < in.head_dim; ++d) acc[d] *= rescale;
  for (int64_t s = s0; s < s1; ++s) {
    const double p = std::exp(scores[s - s0] - new_max);
    row.sum += p;
    add_scaled(p, in.v[s], acc, in.head_dim);
  }
  row.max = new_max;
}

// Output rows [t0, t1) of one query head. Key blocks start at multiples of kBlock, as t0 does, so
// every block a row visits holds at least one key it may see.
template <typename T>
void forward_query_block(const HeadInputs<T>& in, int64_t t0, int64_t t1, HeadRows<T> out, T* lse) {
  const int64_t hd = in.head_dim;
  std::vector<double> acc(static_cast<size_t>((t1 - t0) * hd), 0.0);
  std::vector<double> scores(kBlock);
  std::vector<RunningSoftmax> rows(static_cast<size_t>(t1 - t0));
  for (int64_t s0 = 0; s0 < t1; s0 += kBlock)
    for (int64_t t = t0; t < t1; ++t)
      absorb_keys(in, t, s0, std::min(s0 + kBlock, t + 1), scores.data(), rows[t - t0],
                  &acc[(t - t0) * hd]);
  for (int64_t t = t0; t < t1; ++t) {
    const RunningSoftmax& row = rows[t - t0];
    for (int64_t d = 0; d < hd; ++d) out[t][d] = static_cast<T>(acc[(t - t0) * hd + d] / row.sum);
    lse[t] = static_cast<T>(row.max + std::log(row.sum));
  }
}

// --- backward -------------------------------------------------------------------------------

// What backward reads of one query head besides its inputs.
template <typename T>
struct HeadOutputs {
  HeadRows<const T> out, dout;
  const T* lse;
};

// Gradient rows, summed into in place.
template <typename T>
struct HeadGrads {
  HeadRows<T> dq, dk, dv;
};

// Double scratch for one key block: dk and dv of its keys (dk still without the softmax scale) and
// dq of the query row being processed (likewise).
struct KeyBlockGrads {
  std::vector<double> dk, dv, dq_row;
  explicit KeyBlockGrads(int64_t head_dim)
      : dk(static_cast<size_t>(kBlock * head_dim)),
        dv(static_cast<size_t>(kBlock * head_dim)),
        dq_row(static_cast<size_t>(head_dim)) {}
};

// Adds the contributions of query rows t >= s0 against keys [s0, s1) of one query head.
template <typename T>
void backward_key_block(const HeadInputs<T>& in, const HeadOutputs<T>& o,
                        const std::vector<double>& delta, int64_t seq, int64_t s0, int64_t s1,
                        KeyBlockGrads& scratch, const HeadGrads<T>& g) {
  const int64_t hd = in.head_dim;
  std::fill(scratch.dk.begin(), scratch.dk.end(), 0.0);
  std::fill(scratch.dv.begin(), scratch.dv.end(), 0.0);
  for (int64_t t = s0; t < seq; ++t) {
    std::fill(scratch.dq_row.begin(), scratch.dq_row.end(), 0.0);
    for (int64_t s = s0; s < std::min(s1, t + 1); ++s) {
      const double p =
          std::exp(in.scale * dot(in.q[t], in.k[s], hd) - static_cast<double>(o.lse[t]));
      const double ds = p * (dot(o.dout[t], in.v[s], hd) - delta[t]);
      add_scaled(p, o.dout[t], &scratch.dv[(s - s0) * hd], hd);
      add_scaled(ds, in.q[t], &scratch.dk[(s - s0) * hd], hd);
      add_scaled(ds, in.k[s], scratch.dq_row.data(), hd);
    }
    for (int64_t d = 0; d < hd; ++d) g.dq[t][d] += static_cast<T>(in.scale * scratch.dq_row[d]);
  }
  for (int64_t s = s0; s < s1; ++s)
    for (int64_t d = 0; d < hd; ++d) {
      g.dk[s][d] += static_cast<T>(in.scale * scratch.dk[(s - s0) * hd + d]);
      g.dv[s][d] += static_cast<T>(scratch.dv[(s - s0) * hd + d]);
    }
}

template <typename T>
void backward_query_head(const HeadInputs<T>& in, const HeadOutputs<T>& o, int64_t seq,
                         const HeadGrads<T>& g) {
  std::vector<double> delta(static_cast<size_t>(seq));
  for (int64_t t = 0; t < seq; ++t) delta[t] = dot(o.dout[t], o.out[t], in.head_dim);
  KeyBlockGrads scratch(in.head_dim);
  for (int64_t s0 = 0; s0 < seq; s0 += kBlock)
    backward_key_block(in, o, delta, seq, s0, std::min(s0 + kBlock, seq), scratch, g);
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, float softmax_scale,
                       Tensor& out, Tensor& lse, Stream&) {
  if (q.dtype() == DType::f32) return attention_forward_f32(q, k, v, softmax_scale, out, lse);
  if (q.dtype() == DType::bf16) {
    expect_statistics_dtype<bf16_t>("attention_forward", "lse", lse);
    Tensor out32 = Tensor::empty(out.shape(), DType::f32);
    attention_forward_f32(widened_tensor(q), widened_tensor(k), widened_tensor(v), softmax_scale,
                          out32, lse);
    return round_into(out32, out);
  }
  const Dims d = attention_dims(q, k);
  const int64_t q_blocks = (d.seq + kBlock - 1) / kBlock;
  const int64_t tasks = d.batch * d.q_heads * q_blocks;
  float_dispatch(q.dtype(), "attention_forward", [&]<typename T>() {
    expect_statistics_dtype<T>("attention_forward", "lse", lse);
    const T *pq = q.data<T>(), *pk = k.data<T>(), *pv = v.data<T>();
    T* pout = out.data<T>();
    T* plse = lse.data<T>();
#pragma omp parallel for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t block = task % q_blocks, h = task / q_blocks % d.q_heads;
      const int64_t b = task / (q_blocks * d.q_heads), kv = h / d.group();
      const HeadInputs<T> in{head_rows(pq, d, d.q_heads, b, h), head_rows(pk, d, d.kv_heads, b, kv),
                             head_rows(pv, d, d.kv_heads, b, kv), d.head_dim, softmax_scale};
      const int64_t t0 = block * kBlock;
      forward_query_block(in, t0, std::min(t0 + kBlock, d.seq), head_rows(pout, d, d.q_heads, b, h),
                          plse + (b * d.q_heads + h) * d.seq);
    }
  });
}

void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& out, const Tensor& lse, float softmax_scale, Tensor& dq,
                        Tensor& dk, Tensor& dv, Stream&) {
  if (q.dtype() == DType::f32)
    return attention_backward_f32(dout, q, k, v, out, lse, softmax_scale, dq, dk, dv);
  if (q.dtype() == DType::bf16) {
    expect_statistics_dtype<bf16_t>("attention_backward", "lse", lse);
    Tensor dq32 = Tensor::empty(dq.shape(), DType::f32),
           dk32 = Tensor::empty(dk.shape(), DType::f32);
    Tensor dv32 = Tensor::empty(dv.shape(), DType::f32);
    attention_backward_f32(widened_tensor(dout), widened_tensor(q), widened_tensor(k),
                           widened_tensor(v), widened_tensor(out), lse, softmax_scale, dq32, dk32,
                           dv32);
    round_into(dq32, dq);
    round_into(dk32, dk);
    return round_into(dv32, dv);
  }
  const Dims d = attention_dims(q, k);
  float_dispatch(q.dtype(), "attention_backward", [&]<typename T>() {
    expect_statistics_dtype<T>("attention_backward", "lse", lse);
    const T *pq = q.data<T>(), *pk = k.data<T>(), *pv = v.data<T>();
    const T *pout = out.data<T>(), *pdout = dout.data<T>();
    const T* plse = lse.data<T>();
    T *pdq = dq.data<T>(), *pdk = dk.data<T>(), *pdv = dv.data<T>();
    std::fill_n(pdq, dq.numel(), T(0));
    std::fill_n(pdk, dk.numel(), T(0));
    std::fill_n(pdv, dv.numel(), T(0));
#pragma omp parallel for schedule(dynamic)
    for (int64_t task = 0; task < d.batch * d.kv_heads; ++task) {
      const int64_t b = task / d.kv_heads, kv = task % d.kv_heads;
      for (int64_t h = kv * d.group(); h < (kv + 1) * d.group(); ++h) {
        const HeadInputs<T> in{head_rows(pq, d, d.q_heads, b, h),
                               head_rows(pk, d, d.kv_heads, b, kv),
                               head_rows(pv, d, d.kv_heads, b, kv), d.head_dim, softmax_scale};
        const HeadOutputs<T> o{head_rows(pout, d, d.q_heads, b, h),
                               head_rows(pdout, d, d.q_heads, b, h),
                               plse + (b * d.q_heads + h) * d.seq};
        const HeadGrads<T> g{head_rows(pdq, d, d.q_heads, b, h),
                             head_rows(pdk, d, d.kv_heads, b, kv),
                             head_rows(pdv, d, d.kv_heads, b, kv)};
        backward_query_head(in, o, d.seq, g);
      }
    }
  });
}

}  // namespace moe::cpu
