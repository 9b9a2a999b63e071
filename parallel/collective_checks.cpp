#include "parallel/collective_checks.h"

namespace moe::collective {

int64_t rows_of(const Tensor& t) { return t.ndim() == 0 ? 1 : t.dim(0); }

int64_t row_bytes(const Tensor& t) {
  int64_t bytes = static_cast<int64_t>(dtype_size(t.dtype()));
  for (int i = 1; i < t.ndim(); ++i) bytes *= t.dim(i);
  return bytes;
}

void expect_same_dtype(const char* op, const Tensor& in, const Tensor& out) {
  MOE_CHECK(in.dtype() == out.dtype(), op, ": 'in' is ", dtype_name(in.dtype()), " but 'out' is ",
            dtype_name(out.dtype()));
}

namespace {

void expect_rows(const char* op, const char* arg, const Tensor& t) {
  MOE_CHECK(t.ndim() >= 1, op, ": '", arg, "' must have at least one dim (rows), got ", t.str());
}

// Per-peer row counts: one non-negative entry per rank, summing to the rows of the tensor.
void check_row_counts(const char* op, const char* arg, const std::vector<int64_t>& rows, int size,
                      const char* tensor_arg, const Tensor& t) {
  MOE_CHECK(static_cast<int64_t>(rows.size()) == size, op, ": '", arg, "' has ", rows.size(),
            " entries for ", size, " ranks");
  int64_t total = 0;
  for (size_t p = 0; p < rows.size(); ++p) {
    MOE_CHECK(rows[p] >= 0, op, ": ", arg, "[", p, "] = ", rows[p], " is negative");
    total += rows[p];
  }
  MOE_CHECK(total == t.dim(0), op, ": '", arg, "' sums to ", total, " rows but '", tensor_arg, "' ",
            t.str(), " has ", t.dim(0));
}

}  // namespace

void expect_disjoint(const char* op, const Tensor& in, const Tensor& out) {
  const char* a = static_cast<const char*>(in.raw());
  const char* b = static_cast<const char*>(out.raw());
  const bool overlap = in.nbytes() && out.nbytes() && a < b + out.nbytes() && b < a + in.nbytes();
  MOE_CHECK(!overlap, op, ": 'in' ", in.str(), " and 'out' ", out.str(), " overlap in memory");
}

void check_reduce_scatter(const Tensor& in, const Tensor& out, int size) {
  const char* name = "reduce_scatter";
  expect_same_dtype(name, in, out);
  expect_rows(name, "out", out);
  const Shape expected = out.shape().with_dim(0, size * out.dim(0));
  MOE_CHECK(in.shape() == expected, name, ": 'in' has shape ", in.shape().str(), ", expected ",
            expected.str(), " (", size, " blocks of 'out' ", out.shape().str(), ")");
  expect_disjoint(name, in, out);
}

bool check_all_gather(const Tensor& in, const Tensor& out, int size, int rank) {
  const char* name = "all_gather";
  expect_same_dtype(name, in, out);
  expect_rows(name, "in", in);
  const Shape expected = in.shape().with_dim(0, size * in.dim(0));
  MOE_CHECK(out.shape() == expected, name, ": 'out' has shape ", out.shape().str(), ", expected ",
            expected.str(), " (", size, " blocks of 'in' ", in.shape().str(), ")");
  const size_t block_bytes = in.nbytes();
  const bool in_place =
      block_bytes && in.raw() == static_cast<char*>(out.raw()) + rank * block_bytes;
  if (!in_place) expect_disjoint(name, in, out);
  return in_place;
}

void check_all_to_all_v(const Tensor& in, const std::vector<int64_t>& send_rows, const Tensor& out,
                        const std::vector<int64_t>& recv_rows, int size, int rank) {
  const char* name = "all_to_all_v";
  expect_same_dtype(name, in, out);
  expect_rows(name, "in", in);
  expect_rows(name, "out", out);
  MOE_CHECK(row_bytes(in) == row_bytes(out), name, ": rows of 'in' ", in.str(), " and 'out' ",
            out.str(), " differ in size");
  check_row_counts(name, "send_rows", send_rows, size, "in", in);
  check_row_counts(name, "recv_rows", recv_rows, size, "out", out);
  MOE_CHECK(send_rows[rank] == recv_rows[rank], name, ": rank ", rank, " sends itself ",
            send_rows[rank], " rows but expects ", recv_rows[rank], " from itself");
  expect_disjoint(name, in, out);
}

void check_exchange_counts(const std::vector<int64_t>& send, int size) {
  MOE_CHECK(static_cast<int64_t>(send.size()) == size, "exchange_counts: ", send.size(),
            " counts for ", size, " ranks");
}

void check_peer(const char* op, int peer, int size) {
  MOE_CHECK(peer >= 0 && peer < size, op, ": peer ", peer, " is not a rank of this ", size,
            "-rank communicator");
}

void check_root(const char* op, int root, int size) {
  MOE_CHECK(root >= 0 && root < size, op, ": root ", root, " is not a rank of this ", size,
            "-rank communicator");
}

void check_split_color(int color) {
  MOE_CHECK(color >= 0, "split: color must be >= 0, got ", color);
}

}  // namespace moe::collective
