// The key paths a config file may hold, and the "did you mean" tail of an unknown-key message.
//
// Decisions:
// - The paths come from walking Config::visit once, so they cannot drift from the structs.
// - Suggestions: a close key of the same section (Levenshtein distance, or containing the typo),
//   else the same key name in another section, else the closest key path anywhere, else the list
//   of valid keys at that level.
#pragma once

#include <string>
#include <vector>

namespace moe {

// Section names ("model") and key paths ("model.d_model"), in file order.
const std::vector<std::string>& config_sections();
const std::vector<std::string>& config_keys();

// "; did you mean 'x'?" or "; valid keys in 's' are: ..." for an unknown section or key path.
std::string key_suggestion(const std::string& path);

}  // namespace moe
