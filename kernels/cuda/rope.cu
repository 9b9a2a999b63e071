// Rotary position embedding on CUDA, in the Hugging Face "rotate half" pairing: element i of a head
// and element i + hd/2 turn by position * inv_freq[i] (the caller's f64 table, on the device), with
// cos and sin multiplied by scale.
// - One thread per (row, pair i), looping over the heads, so the angle, its cosine and sine are
//   computed once per (row, pair) and a warp's loads of one head are contiguous.
// - The angle, cosine, sine and the rotation are computed in f64 exactly as the CPU backend does:
//   an f32 angle would be off by up to position * 2^-24 radians (about 2e-3 at position 32k), far
//   more than an f32 output's rounding. The result is rounded once on store.
// - Both elements of a pair are read before either is written, so out may alias x.
// - bf16 rounding points (as kernels/cpu/rope.cpp): each output once, f64 -> f32 -> bf16, the CPU's
//   two steps; only the f64 sincos may differ from the CPU's in their last bits.
// - Backward is the rotation by the negated angle, times scale. A negative position (the CPU
//   backend rejects it) only rotates the other way: it cannot reach outside the tensors.
#include "kernels/cuda/launch.cuh"

namespace moe::cuda {

namespace {

template <typename T>
__global__ void rope_kernel(const T* x, const int32_t* positions, const double* inv_freq,
                            double scale, double direction, int64_t rows, int64_t heads,
                            int64_t head_dim, T* out) {
  const int64_t half = head_dim / 2, pairs = rows * half;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < pairs;
       k += stride) {
    const int64_t n = k / half, i = k % half;
    double s, c;
    sincos(direction * positions[n] * inv_freq[i], &s, &c);
    s *= scale;
    c *= scale;
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t lo = (n * heads + h) * head_dim + i, hi = lo + half;
      const double a = to_float(x[lo]), b = to_float(x[hi]);
      out[lo] = from_float<T>(static_cast<float>(a * c - b * s));
      out[hi] = from_float<T>(static_cast<float>(b * c + a * s));
    }
  }
}

void rotate(const char* op, const Tensor& x, const Tensor& positions, const Tensor& inv_freq,
            double scale, double direction, Tensor& out, Stream& stream) {
  const int64_t rows = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  const int64_t pairs = rows * (head_dim / 2);
  if (pairs == 0 || heads == 0) return;
  use_device(x);
  float_dispatch(x.dtype(), op, [&]<typename T>() {
    rope_kernel<T><<<blocks_for(pairs), kThreads, 0, stream_of(stream)>>>(
        ptr<T>(x), ptr<int32_t>(positions), ptr<double>(inv_freq), scale, direction, rows, heads,
        head_dim, ptr<T>(out));
    MOE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void rope_forward(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float scale,
                  Tensor& out, Stream& stream) {
  rotate("rope_forward", x, positions, inv_freq, scale, 1.0, out, stream);
}

void rope_backward(const Tensor& dout, const Tensor& positions, const Tensor& inv_freq, float scale,
                   Tensor& dx, Stream& stream) {
  rotate("rope_backward", dout, positions, inv_freq, scale, -1.0, dx, stream);
}

}  // namespace moe::cuda
