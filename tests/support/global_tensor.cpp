#include "tests/support/global_tensor.h"

#include <cstring>

#include "kernels/ops.h"

namespace moe::testing {

// Every rank's elements travel with their global indices, so blocks of any shape and placement
// (splits, row lists, none at all) assemble alike.
GlobalTensor gather_global(const Parameter& p, const Tensor& local, Communicator& world) {
  Stream stream;
  const int ranks = world.size();
  const int64_t n = p.shape.numel();
  Tensor sizes = Tensor::empty({ranks}, DType::i64);
  world.all_gather(Tensor::from_vector<int64_t>({1}, {n}), sizes, stream);
  int64_t most = 0;
  for (int r = 0; r < ranks; ++r) most = std::max(most, sizes.data<int64_t>()[r]);

  Tensor mine = Tensor::zeros({most}, DType::f64);
  if (n > 0) {
    Tensor head = mine.narrow(0, n);
    ops::convert(local.view({n}), head, stream);
  }
  Tensor indices = Tensor::zeros({most}, DType::i64);
  int64_t i = 0;
  for (const Piece& piece : pieces(p)) {
    const Shape block = p.shape.ndim() > 0 ? p.shape.with_dim(0, piece.rows) : p.shape;
    for (int64_t j = 0; j < block.numel(); ++j)
      indices.data<int64_t>()[i++] = global_index(block, piece.offset, p.global_shape, j);
  }
  Tensor values = Tensor::empty({ranks * most}, DType::f64);
  world.all_gather(mine, values, stream);
  Tensor where = Tensor::empty({ranks * most}, DType::i64);
  world.all_gather(indices, where, stream);

  GlobalTensor global{Tensor::empty(p.global_shape, DType::f64)};
  double* out = global.values.data<double>();
  std::vector<bool> written(p.global_shape.numel(), false);
  for (int r = 0; r < ranks; ++r)
    for (int64_t k = 0; k < sizes.data<int64_t>()[r]; ++k) {
      const double value = values.data<double>()[r * most + k];
      const int64_t g = where.data<int64_t>()[r * most + k];
      if (written[g] && std::memcmp(&out[g], &value, sizeof(double)) != 0) ++global.mismatched;
      out[g] = value;
      written[g] = true;
    }
  for (bool w : written) global.uncovered += !w;
  return global;
}

}  // namespace moe::testing
