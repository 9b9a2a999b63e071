// Causal grouped-query attention on CUDA: MoEForge's own kernels, the fallback behind cuDNN's fused
// SDPA. FlashAttention-2 style on CUDA cores, f32 arithmetic whatever the storage type (f32 or
// bf16); lse is f32 always. Query head h reads kv head h / (Hq / Hkv); query t sees keys 0..t.
//
// Decisions:
// - Tiles of kTile = 32 queries and 32 keys; a block is 8 warps of kRows = 4 tile rows each (query
//   rows in the forward and dq kernels, key rows in the dk/dv kernel). While scoring, lane j owns
//   column j of the 32 x 32 score tile; dot products over the head dim read 32 x 32 slices staged
//   in shared memory (rows padded to 33 floats: conflict-free along a row and down a column), so
//   any head_dim works with two slices (8.25 KB) of static shared memory per block.
// - Weighted sums (p v, ds k, p dout, ds q) give lane c the output columns c + 32 i, i < kChunks
//   (1, 2, 4 or 8: the fewest covering head_dim), accumulated in registers; the weights of the
//   other lanes' columns arrive by warp shuffle. Head dims above 256 add a grid dimension of
//   256-column chunks, each recomputing the scores: slow, but no model has such heads.
// - Query and key tiles both start at multiples of 32, so a query tile visits key tiles 0..itself
//   (the later ones are fully masked and skipped) and every row sees a key in each visited tile.
//   Forward and dq grids put the longest query tiles first.
// - Forward: one block per (batch x query head, query tile, column chunk), online softmax over the
//   key tiles: running max and sum per row, the accumulator rescaled when the max grows.
// - Backward is deterministic (no atomics): delta = rowsum(dout * out) into an f32 scratch, then
//   one kernel for dk, dv per (batch x kv head, key tile, column chunk) looping over the group's
//   query heads and the query tiles from the key tile on, and one for dq per (batch x query head,
//   query tile, column chunk) looping over key tiles. Both recompute p = exp(score - lse) and
//   ds = p (dout . v - delta). All three gradients are assigned.
// - bf16 rounding points (as kernels/cpu/attention.cpp): out is rounded once on store (the f32
//   accumulator divided by the row sum), lse is f32; delta is read from the stored (bf16) out; dq,
//   dk and dv are each rounded once, from f32 registers. The CPU runs its f32 path on the same
//   values in another order, so the two agree to f32 accuracy, not bit for bit.
#include <algorithm>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"

namespace moe::cuda {

namespace {

constexpr int kTile = 32;  // queries or keys per tile: one per lane while scoring
constexpr int kTileWarps = 8;
constexpr int kRows = kTile / kTileWarps;  // tile rows per warp
constexpr int kTileThreads = kTileWarps * kWarp;
constexpr int kMaxChunks = 8;  // columns per lane: head dims up to 256 in one column chunk

using Slice = float[kTile][kTile + 1];

struct Dims {
  int batch, seq, q_heads, kv_heads, head_dim;
  float scale;
};

// The seq rows of one head of a [B, T, H, hd] tensor: element (t, col) at base[t * stride + col].
template <typename P>
struct HeadRows {
  P* base;
  int64_t stride;
};

template <typename P>
__device__ HeadRows<P> head_rows(P* data, const Dims& d, int heads, int64_t b, int h) {
  return {data + (b * d.seq * heads + h) * d.head_dim, static_cast<int64_t>(heads) * d.head_dim};
}

// Rows [t0, t0 + 32) and columns [col0, col0 + 32) of one head into s, zeros outside the tensor.
template <typename T>
__device__ void stage(Slice& s, HeadRows<const T> rows, int t0, int col0, const Dims& d) {
  for (int e = threadIdx.x; e < kTile * kTile; e += kTileThreads) {
    const int r = e / kTile, c = e % kTile, t = t0 + r, col = col0 + c;
    s[r][c] = t < d.seq && col < d.head_dim ? to_float(rows.base[t * rows.stride + col]) : 0.0f;
  }
}

// acc[r] += a[row0 + r, :] . b[lane, :] over one staged slice.
__device__ void slice_dots(const Slice& a, int row0, const Slice& b, float (&acc)[kRows]) {
  const int lane = threadIdx.x % kWarp;
#pragma unroll 8
  for (int c = 0; c < kTile; ++c) {
    const float y = b[lane][c];
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] += a[row0 + r][c] * y;
  }
}

// acc[r] += sum over j of (w[r] of lane j) * x[j, lane].
__device__ void slice_mix(const float (&w)[kRows], const Slice& x, float (&acc)[kRows]) {
  const int lane = threadIdx.x % kWarp;
#pragma unroll 8
  for (int j = 0; j < kTile; ++j) {
    const float y = x[j][lane];
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] += __shfl_sync(0xffffffffu, w[r], j) * y;
  }
}

// acc[r] += a(a0 + this warp's row r) . b(b0 + lane) over the whole head dim, staged through as,
// bs.
template <typename T>
__device__ void tile_dots(HeadRows<const T> a, int a0, HeadRows<const T> b, int b0, const Dims& d,
                          Slice& as, Slice& bs, float (&acc)[kRows]) {
  for (int col0 = 0; col0 < d.head_dim; col0 += kTile) {
    __syncthreads();  // the previous readers of as and bs are done
    stage(as, a, a0, col0, d);
    stage(bs, b, b0, col0, d);
    __syncthreads();
    slice_dots(as, threadIdx.x / kWarp * kRows, bs, acc);
  }
}

// acc[i][r] += sum over j of (w[r] of lane j) * x(t0 + j, col0 + 32 i + lane), staged through s.
template <typename T, int kChunks>
__device__ void mix_rows(const float (&w)[kRows], HeadRows<const T> x, int t0, int col0,
                         const Dims& d, Slice& s, float (&acc)[kChunks][kRows]) {
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    if (col0 + i * kTile >= d.head_dim) break;  // the same for the whole block
    __syncthreads();
    stage(s, x, t0, col0 + i * kTile, d);
    __syncthreads();
    slice_mix(w, s, acc[i]);
  }
}

// Writes scale * acc to rows [t0 + this warp's rows] of one head, inside the tensor.
template <typename T, int kChunks>
__device__ void store_rows(const float (&acc)[kChunks][kRows], float scale, HeadRows<T> y, int t0,
                           int col0, const Dims& d) {
  const int lane = threadIdx.x % kWarp;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int t = t0 + threadIdx.x / kWarp * kRows + r;
    if (t >= d.seq) continue;
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      const int col = col0 + i * kTile + lane;
      if (col < d.head_dim) y.base[t * y.stride + col] = from_float<T>(scale * acc[i][r]);
    }
  }
}

// The block's place in a (batch x head, tile, column chunk) grid.
struct BlockPlace {
  int64_t b;
  int h, t0, col0;
};

template <int kChunks>
__device__ BlockPlace block_place(int heads, bool longest_first) {
  const int tile = longest_first ? gridDim.y - 1 - blockIdx.y : blockIdx.y;
  return {blockIdx.x / heads, static_cast<int>(blockIdx.x % heads), tile * kTile,
          static_cast<int>(blockIdx.z) * kChunks * kTile};
}

template <typename T, int kChunks>
__global__ void __launch_bounds__(kTileThreads)
    forward_kernel(const T* q, const T* k, const T* v, Dims d, T* out, float* lse) {
  __shared__ Slice as, bs;
  const BlockPlace at = block_place<kChunks>(d.q_heads, true);
  const int kv = at.h / (d.q_heads / d.kv_heads), row0 = at.t0 + threadIdx.x / kWarp * kRows;
  const HeadRows<const T> qr = head_rows(q, d, d.q_heads, at.b, at.h);
  const HeadRows<const T> kr = head_rows(k, d, d.kv_heads, at.b, kv);
  const HeadRows<const T> vr = head_rows(v, d, d.kv_heads, at.b, kv);
  float row_max[kRows], row_sum[kRows], acc[kChunks][kRows] = {};
  for (int r = 0; r < kRows; ++r) row_max[r] = -INFINITY, row_sum[r] = 0.0f;
  for (int s0 = 0; s0 <= at.t0; s0 += kTile) {
    float p[kRows] = {};
    tile_dots(qr, at.t0, kr, s0, d, as, bs, p);
    const int key = s0 + threadIdx.x % kWarp;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      // Rows past the sequence see every key of it, so that no row is fully masked.
      const float score = key <= min(row0 + r, d.seq - 1) ? d.scale * p[r] : -INFINITY;
      const float new_max = fmaxf(row_max[r], warp_max(score));
      const float rescale = expf(row_max[r] - new_max);
      p[r] = expf(score - new_max);
      row_sum[r] = row_sum[r] * rescale + warp_sum(p[r]);
      row_max[r] = new_max;
#pragma unroll
      for (int i = 0; i < kChunks; ++i) acc[i][r] *= rescale;
    }
    mix_rows(p, vr, s0, at.col0, d, as, acc);
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int i = 0; i < kChunks; ++i) acc[i][r] /= row_sum[r];
    if (blockIdx.z == 0 && threadIdx.x % kWarp == 0 && row0 + r < d.seq)
      lse[(at.b * d.q_heads + at.h) * d.seq + row0 + r] = row_max[r] + logf(row_sum[r]);
  }
  store_rows(acc, 1.0f, head_rows(out, d, d.q_heads, at.b, at.h), at.t0, at.col0, d);
}

// delta[b, h, t] = sum over the head dim of dout * out: one warp per (b, t, h) row.
template <typename T>
__global__ void delta_kernel(const T* dout, const T* out, Dims d, float* delta) {
  const int64_t rows = static_cast<int64_t>(d.batch) * d.seq * d.q_heads;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
       row < rows; row += warps) {
    float dot = 0.0f;
    for (int col = lane; col < d.head_dim; col += kWarp)
      dot += to_float(dout[row * d.head_dim + col]) * to_float(out[row * d.head_dim + col]);
    dot = warp_sum(dot);
    const int64_t h = row % d.q_heads, t = row / d.q_heads % d.seq, b = row / d.q_heads / d.seq;
    if (lane == 0) delta[(b * d.q_heads + h) * d.seq + t] = dot;
  }
}

// What the backward kernels read: the forward's inputs and outputs, with lse and delta [B, Hq, T].
template <typename T>
struct BackwardInputs {
  const T *dout, *q, *k, *v;
  const float *lse, *delta;
};

template <typename T, int kChunks>
__global__ void __launch_bounds__(kTileThreads) dq_kernel(BackwardInputs<T> in, Dims d, T* dq) {
  __shared__ Slice as, bs;
  const BlockPlace at = block_place<kChunks>(d.q_heads, true);
  const int kv = at.h / (d.q_heads / d.kv_heads), row0 = at.t0 + threadIdx.x / kWarp * kRows;
  const HeadRows<const T> qr = head_rows(in.q, d, d.q_heads, at.b, at.h);
  const HeadRows<const T> dor = head_rows(in.dout, d, d.q_heads, at.b, at.h);
  const HeadRows<const T> kr = head_rows(in.k, d, d.kv_heads, at.b, kv);
  const HeadRows<const T> vr = head_rows(in.v, d, d.kv_heads, at.b, kv);
  const int64_t stats = (at.b * d.q_heads + at.h) * d.seq;
  float lse[kRows], delta[kRows], acc[kChunks][kRows] = {};
  for (int r = 0; r < kRows; ++r) {
    const bool inside = row0 + r < d.seq;
    lse[r] = inside ? in.lse[stats + row0 + r] : 0.0f;
    delta[r] = inside ? in.delta[stats + row0 + r] : 0.0f;
  }
  for (int s0 = 0; s0 <= at.t0; s0 += kTile) {
    float p[kRows] = {}, ds[kRows] = {};
    tile_dots(qr, at.t0, kr, s0, d, as, bs, p);
    tile_dots(dor, at.t0, vr, s0, d, as, bs, ds);
    const int key = s0 + threadIdx.x % kWarp;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int t = row0 + r;
      p[r] = key <= t && t < d.seq ? expf(d.scale * p[r] - lse[r]) : 0.0f;
      ds[r] = p[r] * (ds[r] - delta[r]);
    }
    mix_rows(ds, kr, s0, at.col0, d, as, acc);
  }
  store_rows(acc, d.scale, head_rows(dq, d, d.q_heads, at.b, at.h), at.t0, at.col0, d);
}

template <typename T, int kChunks>
__global__ void __launch_bounds__(kTileThreads)
    dkdv_kernel(BackwardInputs<T> in, Dims d, T* dk, T* dv) {
  __shared__ Slice as, bs;
  const BlockPlace at = block_place<kChunks>(d.kv_heads, false);  // at.h: kv head, at.t0: key
  const int s0 = at.t0, key0 = s0 + threadIdx.x / kWarp * kRows, group = d.q_heads / d.kv_heads;
  const HeadRows<const T> kr = head_rows(in.k, d, d.kv_heads, at.b, at.h);
  const HeadRows<const T> vr = head_rows(in.v, d, d.kv_heads, at.b, at.h);
  float dk_acc[kChunks][kRows] = {}, dv_acc[kChunks][kRows] = {};
  for (int h = at.h * group; h < (at.h + 1) * group; ++h) {
    const HeadRows<const T> qr = head_rows(in.q, d, d.q_heads, at.b, h);
    const HeadRows<const T> dor = head_rows(in.dout, d, d.q_heads, at.b, h);
    const int64_t stats = (at.b * d.q_heads + h) * d.seq;
    for (int t0 = s0; t0 < d.seq; t0 += kTile) {
      const int t = t0 + threadIdx.x % kWarp;  // this lane's query while scoring
      const float lse = t < d.seq ? in.lse[stats + t] : 0.0f;
      const float delta = t < d.seq ? in.delta[stats + t] : 0.0f;
      float p[kRows] = {}, ds[kRows] = {};
      tile_dots(kr, s0, qr, t0, d, as, bs, p);
      tile_dots(vr, s0, dor, t0, d, as, bs, ds);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        p[r] = key0 + r <= t && t < d.seq ? expf(d.scale * p[r] - lse) : 0.0f;
        ds[r] = p[r] * (ds[r] - delta);
      }
      mix_rows(p, dor, t0, at.col0, d, as, dv_acc);
      mix_rows(ds, qr, t0, at.col0, d, as, dk_acc);
    }
  }
  store_rows(dk_acc, d.scale, head_rows(dk, d, d.kv_heads, at.b, at.h), s0, at.col0, d);
  store_rows(dv_acc, 1.0f, head_rows(dv, d, d.kv_heads, at.b, at.h), s0, at.col0, d);
}

Dims attention_dims(const Tensor& q, const Tensor& k, float scale) {
  return {static_cast<int>(q.dim(0)), static_cast<int>(q.dim(1)), static_cast<int>(q.dim(2)),
          static_cast<int>(k.dim(2)), static_cast<int>(q.dim(3)), scale};
}

// The grid of a tile kernel over `heads` heads: (batch x heads, tiles, column chunks).
template <int kChunks>
dim3 tile_grid(const Dims& d, int heads) {
  constexpr int columns = kChunks * kTile;
  return dim3(static_cast<unsigned>(d.batch * heads),
              static_cast<unsigned>((d.seq + kTile - 1) / kTile),
              static_cast<unsigned>(std::max(1, (d.head_dim + columns - 1) / columns)));
}

// Runs body.template operator()<T, kChunks>() for the storage type and the fewest 32-column
// chunks per lane that cover the head dim, at most kMaxChunks.
template <typename Body>
void attention_dispatch(const char* op, DType dtype, int head_dim, Body&& body) {
  float_dispatch(dtype, op, [&]<typename T>() {
    if (head_dim <= 32) return body.template operator()<T, 1>();
    if (head_dim <= 64) return body.template operator()<T, 2>();
    if (head_dim <= 128) return body.template operator()<T, 4>();
    body.template operator()<T, kMaxChunks>();
  });
}

void check_lse(const char* op, const Tensor& lse) {
  MOE_CHECK(lse.dtype() == DType::f32, op, ": lse must be f32 on cuda, got ",
            dtype_name(lse.dtype()));
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, float softmax_scale,
                       Tensor& out, Tensor& lse, Stream& stream) {
  check_lse("attention_forward", lse);
  if (lse.numel() == 0) return;
  const Dims d = attention_dims(q, k, softmax_scale);
  use_device(q);
  attention_dispatch("attention_forward", q.dtype(), d.head_dim, [&]<typename T, int kChunks>() {
    forward_kernel<T, kChunks>
        <<<tile_grid<kChunks>(d, d.q_heads), kTileThreads, 0, stream_of(stream)>>>(
            ptr<T>(q), ptr<T>(k), ptr<T>(v), d, ptr<T>(out), ptr<float>(lse));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& out, const Tensor& lse, float softmax_scale, Tensor& dq,
                        Tensor& dk, Tensor& dv, Stream& stream) {
  check_lse("attention_backward", lse);
  if (q.numel() == 0) return;  // dq, dk and dv are empty too
  const Dims d = attention_dims(q, k, softmax_scale);
  use_device(q);
  const cudaStream_t s = stream_of(stream);
  Tensor delta = Tensor::empty(lse.shape(), DType::f32, q.device());
  attention_dispatch("attention_backward", q.dtype(), d.head_dim, [&]<typename T, int kChunks>() {
    delta_kernel<T><<<blocks_for(lse.numel() * kWarp), kThreads, 0, s>>>(ptr<T>(dout), ptr<T>(out),
                                                                         d, ptr<float>(delta));
    MOE_CUDA_CHECK_LAUNCH();
    const BackwardInputs<T> in{ptr<T>(dout), ptr<T>(q),       ptr<T>(k),
                               ptr<T>(v),    ptr<float>(lse), ptr<float>(delta)};
    dq_kernel<T, kChunks>
        <<<tile_grid<kChunks>(d, d.q_heads), kTileThreads, 0, s>>>(in, d, ptr<T>(dq));
    MOE_CUDA_CHECK_LAUNCH();
    dkdv_kernel<T, kChunks>
        <<<tile_grid<kChunks>(d, d.kv_heads), kTileThreads, 0, s>>>(in, d, ptr<T>(dk), ptr<T>(dv));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace moe::cuda
