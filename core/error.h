// Errors: typed exceptions and the check macros every folder uses.
//
// Two kinds of check (DESIGN.md §3 "Errors"):
//   MOE_CHECK(cond, ...)  user/input errors: throws InputError with a message built from the
//                         trailing arguments, so it can name the values involved.
//   MOE_ASSERT(cond, ...) internal invariants: always on (no NDEBUG), throws InternalError.
// Library-specific checks (MPI, CUDA, cuBLAS, cuDNN, NCCL) are one-liners over MOE_CHECK_STATUS,
// given the failing expression as written. Every message carries the rank and file:line, so a log
// gathered from many ranks still says who failed where.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace moe {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class InputError : public Error {  // a bad config, file, shape or argument: the user can fix it
 public:
  using Error::Error;
};
class InternalError : public Error {  // a broken invariant: a bug in MoEForge
 public:
  using Error::Error;
};
class CommError : public Error {  // MPI or NCCL failed
 public:
  using Error::Error;
};
class DeviceError : public Error {  // CUDA, cuBLAS or cuDNN failed
 public:
  using Error::Error;
};

// The process rank used in messages; set once by whoever initializes MPI (-1: not set).
void set_error_rank(int rank);
int error_rank();

// "[rank r] file:line: message"
std::string located_message(const char* file, int line, const std::string& message);

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace moe

#define MOE_THROW(ExceptionType, ...) \
  throw ExceptionType(                \
      ::moe::located_message(__FILE__, __LINE__, ::moe::detail::concat(__VA_ARGS__)))

#define MOE_CHECK(cond, ...)                                \
  do {                                                      \
    if (!(cond)) MOE_THROW(::moe::InputError, __VA_ARGS__); \
  } while (0)

#define MOE_ASSERT(cond, ...)                                                           \
  do {                                                                                  \
    if (!(cond))                                                                        \
      MOE_THROW(::moe::InternalError, "internal error: assertion '" #cond "' failed. ", \
                ##__VA_ARGS__);                                                         \
  } while (0)

// Checks a library call that returns a status code. `ok` is the success value, `describe` turns a
// code into text. Wrappers pass #expr themselves (MOE_CHECK_STATUS), so the message quotes the call
// as written, before macro expansion of its arguments.
#define MOE_CHECK_STATUS(ExceptionType, expr, expr_text, ok, describe)                   \
  do {                                                                                   \
    auto moe_status_ = (expr);                                                           \
    if (moe_status_ != (ok))                                                             \
      MOE_THROW(ExceptionType, expr_text, " failed: ", describe(moe_status_), " (code ", \
                static_cast<long long>(moe_status_), ")");                               \
  } while (0)
