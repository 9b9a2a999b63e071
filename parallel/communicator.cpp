#include "parallel/communicator.h"

#include <numeric>

namespace moe {

const char* collective_name(Collective kind) {
  switch (kind) {
    case Collective::all_reduce:
      return "all_reduce";
    case Collective::reduce_scatter:
      return "reduce_scatter";
    case Collective::all_gather:
      return "all_gather";
    case Collective::all_to_all:
      return "all_to_all";
    case Collective::broadcast:
      return "broadcast";
    case Collective::send_recv:
      return "send_recv";
  }
  return "?";
}

void broadcast_text(std::string& text, Communicator* group) {
  if (!group || group->size() == 1) return;
  Tensor codes = Tensor::zeros({1024}, DType::i32);
  for (size_t i = 0; i < text.size() && i < 1023; ++i) codes.data<int32_t>()[i] = text[i];
  Stream stream;
  group->host().broadcast(codes, 0, stream);
  text.clear();
  for (int i = 0; i < 1024 && codes.data<int32_t>()[i] != 0; ++i)
    text += static_cast<char>(codes.data<int32_t>()[i]);
}

bool any_rank_failed(const std::string& problem, Communicator* group) {
  Tensor failed = Tensor::from_vector<int64_t>({1}, {problem.empty() ? 0 : 1});
  Stream stream;
  if (group && group->size() > 1) group->host().all_reduce(failed, ReduceOp::max, stream);
  return failed.data<int64_t>()[0] != 0;
}

namespace {
struct NothingPending final : PendingTransfers {
  void wait() override {}
};
}  // namespace

std::unique_ptr<PendingTransfers> Communicator::start_send_recv(const std::vector<Transfer>& sends,
                                                                const std::vector<Transfer>& recvs,
                                                                Stream& stream) {
  send_recv(sends, recvs, stream);
  return std::make_unique<NothingPending>();
}

int64_t CommVolume::total() const {
  return std::accumulate(bytes.begin(), bytes.end(), int64_t{0});
}

}  // namespace moe
