// Communicator: the one interface every parallel algorithm talks to (DESIGN.md §3).
//
// Decisions:
// - Implementations: MpiCommunicator (host tensors, always built, so every parallel algorithm is
//   tested under mpirun on a CPU-only machine) and, with CUDA, an NCCL one (device tensors).
// - Communicators are passed to whoever needs them; there is no global instance.
// - A collective on a communicator of one rank returns at once (copying in to out where they
// differ).
// - Tensors are split along dim 0 ("rows"). Every method below communicates, and every rank of the
//   communicator must call it in the same order.
// - Every communicator counts the bytes this rank hands to each kind of collective (volume()): the
//   payload it sends (the tensor it contributes; for all-to-all only the rows for other ranks; for
//   broadcast only on the root), not the wire traffic of the algorithm behind it. A communicator of
//   one rank counts nothing, because it sends nothing. The trainer logs it per step.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/stream.h"
#include "core/tensor.h"

namespace moe {

enum class ReduceOp { sum, max, min };

enum class Collective { all_reduce, reduce_scatter, all_gather, all_to_all, broadcast, send_recv };
constexpr int kCollectiveKinds = 6;
const char* collective_name(Collective kind);

struct CommVolume {
  std::array<int64_t, kCollectiveKinds> bytes{};
  int64_t operator[](Collective kind) const { return bytes[static_cast<int>(kind)]; }
  int64_t total() const;
};

// One point-to-point transfer of a whole tensor to or from `peer` (see send_recv).
struct Transfer {
  int peer = 0;
  Tensor tensor;  // sent from, or received into (a handle: its storage is written)
};

// Transfers started by Communicator::start_send_recv; wait() completes them (once; the
// destructor waits if nobody did). The tensors must stay as they are until then.
class PendingTransfers {
 public:
  virtual ~PendingTransfers() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // x = op over ranks of x, in place. Float and integer dtypes.
  virtual void all_reduce(Tensor& x, ReduceOp op, Stream& stream) = 0;
  // in[size * n, ...] -> out[n, ...]: rank r gets op over ranks of block r of `in`.
  virtual void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op, Stream& stream) = 0;
  // in[n, ...] -> out[size * n, ...]: block r of `out` is rank r's `in`.
  virtual void all_gather(const Tensor& in, Tensor& out, Stream& stream) = 0;
  // Rows of `in` go in consecutive blocks: send_rows[p] rows to rank p. `out` receives recv_rows[p]
  // rows from each rank p, in rank order. Counts may be zero and uneven; recv_rows must match what
  // the peers send (use exchange_counts to learn them). Any dtype.
  virtual void all_to_all_v(const Tensor& in, const std::vector<int64_t>& send_rows, Tensor& out,
                            const std::vector<int64_t>& recv_rows, Stream& stream) = 0;
  // Host counts: returns recv with recv[p] = the value rank p passed in send[rank()].
  virtual std::vector<int64_t> exchange_counts(const std::vector<int64_t>& send) = 0;
  // A group of point-to-point transfers, as NCCL's grouped send/recv: every receive and send is
  // posted, then all are awaited, so no order of them deadlocks. Each receive must have the size of
  // the matching send its peer posts to this rank (in posting order between one pair of ranks);
  // a transfer with this rank itself is a copy. Any dtype. Counted: the bytes sent to other ranks.
  virtual void send_recv(const std::vector<Transfer>& sends, const std::vector<Transfer>& recvs,
                         Stream& stream) = 0;
  // The same transfers, started: the caller computes while they move and waits when it needs
  // them. MPI posts them nonblocking; NCCL, once enable_overlapped_transfers() has run, moves
  // them on a stream of their own, and wait() orders `stream` after them. The default runs
  // send_recv and returns a handle with nothing left to wait for.
  virtual std::unique_ptr<PendingTransfers> start_send_recv(const std::vector<Transfer>& sends,
                                                            const std::vector<Transfer>& recvs,
                                                            Stream& stream);
  // Makes what start_send_recv needs to overlap where that takes resources (NCCL: a stream and a
  // communicator of its own). Collective; nothing by default.
  virtual void enable_overlapped_transfers() {}
  // x on every rank = x on `root`.
  virtual void broadcast(Tensor& x, int root, Stream& stream) = 0;
  virtual void barrier() = 0;
  // Ranks with the same color form a new communicator, ordered by key (then by rank).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // The same ranks for host tensors (small host-side exchanges such as counts and statistics): the
  // communicator itself for MPI, its MPI twin for NCCL.
  virtual Communicator& host() { return *this; }

  const CommVolume& volume() const { return volume_; }
  void reset_volume() { volume_ = {}; }

 protected:
  void count(Collective kind, int64_t bytes) { volume_.bytes[static_cast<int>(kind)] += bytes; }
  // send_recv's count: the bytes of the sends to other ranks.
  void count_sends(const std::vector<Transfer>& sends) {
    for (const Transfer& t : sends)
      if (t.peer != rank()) count(Collective::send_recv, static_cast<int64_t>(t.tensor.nbytes()));
  }

 private:
  CommVolume volume_;
};

// Every rank of `group` (null: this process alone) gets the text of the group's rank 0, up to
// 1023 bytes: how one rank's verdict (a file-system problem, "" for none) reaches all of them, so
// that they stop together. Collective, over group->host().
void broadcast_text(std::string& text, Communicator* group);

// Whether any rank of `group` has a problem (its own `problem` is non-empty): how ranks that may
// fail on their own (reading their part of a file) agree before the next collective, so that no
// rank waits in one alone. Collective, over group->host().
bool any_rank_failed(const std::string& problem, Communicator* group);

// A communicator over all processes of the MPI job (MPI must be initialized).
std::unique_ptr<Communicator> mpi_world_communicator();
// The same for tensors on `device`, one CUDA device per rank: NCCL, bootstrapped over MPI.
// Collective. In a build without CUDA it throws InputError.
std::unique_ptr<Communicator> nccl_world_communicator(Device device);

}  // namespace moe
