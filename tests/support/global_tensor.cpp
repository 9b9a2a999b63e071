#include "tests/support/global_tensor.h"

#include <cmath>
#include <cstring>

#include "kernels/ops.h"

namespace moe::testing {

GlobalTensor gather_global(const Parameter& p, const Tensor& local, Communicator& world) {
  Stream stream;
  const int ranks = world.size();
  const int64_t n = p.shape.numel(), dims = p.shape.ndim();
  Tensor mine = Tensor::empty({n}, DType::f64);
  ops::convert(local, mine, stream);
  Tensor blocks = Tensor::empty({ranks * n}, DType::f64);
  world.all_gather(mine, blocks, stream);
  Tensor offsets = Tensor::empty({ranks * dims}, DType::i64);
  world.all_gather(Tensor::from_vector<int64_t>({dims}, p.offset), offsets, stream);

  GlobalTensor global{Tensor::empty(p.global_shape, DType::f64)};
  double* out = global.values.data<double>();
  std::vector<bool> written(p.global_shape.numel(), false);
  for (int r = 0; r < ranks; ++r) {
    const int64_t* o = offsets.data<int64_t>() + r * dims;
    const std::vector<int64_t> offset(o, o + dims);
    const double* block = blocks.data<double>() + r * n;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t g = global_index(p.shape, offset, p.global_shape, i);
      if (written[g] && std::memcmp(&out[g], &block[i], sizeof(double)) != 0) ++global.mismatched;
      out[g] = block[i];
      written[g] = true;
    }
  }
  for (bool w : written) global.uncovered += !w;
  return global;
}

}  // namespace moe::testing
