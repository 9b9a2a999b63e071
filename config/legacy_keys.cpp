#include "config/legacy_keys.h"

#include <string>

namespace moe {

void upgrade_legacy_keys(YAML::Node& root) {
  YAML::Node parallel = root["parallel"];
  if (!parallel.IsMap() || !parallel["fssdp"]) return;
  const bool fssdp = parallel["fssdp"].IsScalar() && parallel["fssdp"].as<std::string>() == "true";
  parallel.remove("fssdp");
  if (fssdp && !parallel["experts"]) parallel["experts"] = "fssdp";
}

}  // namespace moe
