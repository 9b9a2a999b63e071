// Real-text indexed datasets for tests: the paragraphs of a text file as documents, byte tokens
// with the end-of-document token after each.
#pragma once

#include <string>

namespace moe::testing {

// Writes PREFIX.bin/.idx (parent directories created) and returns prefix.
std::string write_text_dataset(const std::string& text_file, const std::string& prefix);

}  // namespace moe::testing
