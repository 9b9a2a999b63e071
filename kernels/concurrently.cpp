// See concurrently.h.
#include "kernels/concurrently.h"

#include <exception>

#include "kernels/op_profile.h"

namespace moe::ops {

void concurrently(const char* name, Device device, const std::vector<int>& order,
                  const std::function<void(int)>& task) {
  if (!device.is_cpu()) {
    for (const int i : order) task(i);
    return;
  }
  const OpProfileScope whole(name);
  const bool profiling = op_profiling();
  set_op_profiling(false);
  std::exception_ptr error;
  const auto n = static_cast<int64_t>(order.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = 0; j < n; ++j) {
    try {
      task(order[j]);
    } catch (...) {
#pragma omp critical(moe_concurrently_error)
      if (!error) error = std::current_exception();
    }
  }
  set_op_profiling(profiling);
  if (error) std::rethrow_exception(error);
}

}  // namespace moe::ops
