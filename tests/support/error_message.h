// Error-path helpers: run a call that must throw InputError and look inside its message.
#pragma once

#include <functional>
#include <string>

#include <gtest/gtest.h>

namespace moe::testing {

// Runs call; records a test failure unless it throws InputError. Returns the message ("" if none).
std::string input_error_message(const std::function<void()>& call);

// Succeeds when message contains fragment; otherwise prints both.
::testing::AssertionResult mentions(const std::string& message, const std::string& fragment);

}  // namespace moe::testing
