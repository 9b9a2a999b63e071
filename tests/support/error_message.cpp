#include "tests/support/error_message.h"

#include "core/error.h"

namespace moe::testing {

std::string input_error_message(const std::function<void()>& call) {
  try {
    call();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected InputError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected InputError, nothing was thrown";
  return "";
}

::testing::AssertionResult mentions(const std::string& message, const std::string& fragment) {
  if (message.find(fragment) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "message \"" << message << "\" does not mention \"" << fragment << "\"";
}

}  // namespace moe::testing
