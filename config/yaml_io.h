// Config <-> YAML: reading a file with --set overrides, and printing a config back.
//
// Decisions:
// - --set overrides edit the parsed YAML tree before conversion, so they pass the same unknown-key,
//   type and range checks as the file, and an error names the --set that caused it.
// - Errors are InputError naming the source (file or --set), the key path, the value and what is
//   allowed, e.g. "unknown key 'model.n_layer' in run.yaml; did you mean 'model.n_layers'?".
#pragma once

#include <string>
#include <vector>

#include "config/run_config.h"

namespace moe {

// Reads a config file and applies overrides ("a.b.c=value", from --set, in order), then validates.
Config load_config(const std::string& yaml_path, const std::vector<std::string>& overrides = {});
// The same for YAML text; source_name stands for the file in messages.
Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides = {});
// Every key with its value and meaning as a comment; parse_config(to_yaml(c)) == c.
std::string to_yaml(const Config& config);

}  // namespace moe
