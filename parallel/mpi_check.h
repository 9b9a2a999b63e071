// MOE_MPI_CHECK(call): a failed MPI call throws CommError naming the call and MPI's own error text
// (MPI_Error_string), on top of MOE_CHECK_STATUS. MPI only returns error codes on communicators
// whose error handler is MPI_ERRORS_RETURN; MpiCommunicator sets it on the communicators it owns.
#pragma once

#include <mpi.h>

#include <string>

#include "core/error.h"

namespace moe::detail {

inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "unknown MPI error";
  return std::string(text, static_cast<size_t>(length));
}

}  // namespace moe::detail

#define MOE_MPI_CHECK(expr) \
  MOE_CHECK_STATUS(::moe::CommError, expr, #expr, MPI_SUCCESS, ::moe::detail::mpi_error_string)
