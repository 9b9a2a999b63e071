// Argument checks shared by every Communicator: the same rules and messages for MPI and NCCL, made
// from local values before any communication, so a bad call throws on every rank that makes it and
// none is left waiting inside a collective. Each communicator adds its own device and dtype checks.
#pragma once

#include <vector>

#include "parallel/communicator.h"

namespace moe::collective {

int64_t rows_of(const Tensor& t);    // dim 0; a 0-dim tensor is one row
int64_t row_bytes(const Tensor& t);  // bytes of one row

void expect_same_dtype(const char* op, const Tensor& in, const Tensor& out);
// The send and receive buffers must not overlap (MPI's rule, kept for NCCL too).
void expect_disjoint(const char* op, const Tensor& in, const Tensor& out);

// in[size * n, ...] -> out[n, ...].
void check_reduce_scatter(const Tensor& in, const Tensor& out, int size);
// in[n, ...] -> out[size * n, ...]; returns whether `in` is this rank's block of `out` (in place).
bool check_all_gather(const Tensor& in, const Tensor& out, int size, int rank);
void check_all_to_all_v(const Tensor& in, const std::vector<int64_t>& send_rows, const Tensor& out,
                        const std::vector<int64_t>& recv_rows, int size, int rank);
void check_exchange_counts(const std::vector<int64_t>& send, int size);
void check_peer(const char* op, int peer, int size);
void check_root(const char* op, int root, int size);
void check_split_color(int color);

}  // namespace moe::collective
