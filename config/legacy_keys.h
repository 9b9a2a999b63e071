// Keys of earlier versions that checkpoints still carry in their saved config, rewritten to what
// they mean now before the file is read, so every saved config keeps loading.
//
// - parallel.fssdp (a refused flag, so false in every saved config) became parallel.experts.
#pragma once

#include <yaml-cpp/yaml.h>

namespace moe {

void upgrade_legacy_keys(YAML::Node& root);

}  // namespace moe
