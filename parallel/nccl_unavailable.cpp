// nccl_world_communicator in a build without CUDA: a clear error instead of a link failure.
#include "parallel/communicator.h"

#include "core/error.h"

namespace moe {

std::unique_ptr<Communicator> nccl_world_communicator(Device device) {
  MOE_THROW(InputError, "an NCCL communicator for ", device.str(),
            " was asked for, but MoEForge was built without CUDA (configure with "
            "-DMOE_WITH_CUDA=ON on a machine with the CUDA toolkit)");
}

}  // namespace moe
