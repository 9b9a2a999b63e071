// The CUDA, cuBLAS and NCCL check macros turn a failed status into a DeviceError/CommError
// that names the expression and the library's error text. These need the libraries, not a GPU, so
// they run on every machine with a CUDA build.
#include <string>

#include <gtest/gtest.h>

#include "kernels/cuda/cuda_check.h"
#include "parallel/nccl_check.h"

namespace moe {
namespace {

template <typename Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no exception)";
}

TEST(CudaChecks, EachMacroNamesTheExpressionAndTheLibraryError) {
  const std::string cuda = message_of([] { MOE_CUDA_CHECK(cudaErrorInvalidValue); });
  EXPECT_NE(cuda.find("cudaErrorInvalidValue failed: invalid argument"), std::string::npos) << cuda;
  const std::string cublas = message_of([] { MOE_CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED); });
  EXPECT_NE(cublas.find("CUBLAS_STATUS_NOT_INITIALIZED"), std::string::npos) << cublas;
  EXPECT_THROW(MOE_NCCL_CHECK(ncclInvalidArgument), CommError);
  const std::string nccl = message_of([] { MOE_NCCL_CHECK(ncclInvalidArgument); });
  EXPECT_NE(nccl.find("invalid argument"), std::string::npos) << nccl;
  EXPECT_NO_THROW(MOE_CUDA_CHECK(cudaSuccess));
}

}  // namespace
}  // namespace moe
