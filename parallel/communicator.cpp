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

int64_t CommVolume::total() const {
  return std::accumulate(bytes.begin(), bytes.end(), int64_t{0});
}

}  // namespace moe
