#include "data/json_field.h"

#include <algorithm>
#include <variant>

#include "core/error.h"
#include "formats/json.h"

namespace moe {

std::string json_string_field(std::string_view line, std::string_view key,
                              const std::string& where) {
  JsonValue record;
  try {
    record = parse_json(
        line, where,
        {.lone_surrogates = LoneSurrogates::replace, .max_depth = 512, .require_object = true});
  } catch (const JsonSyntaxError& error) {
    MOE_THROW(InputError, where, ": column ", error.column(), ": ", error.problem());
  }
  JsonObject& members = std::get<JsonObject>(record.data());
  const auto last = std::find_if(members.rbegin(), members.rend(),
                                 [&](const auto& member) { return member.first == key; });
  if (last == members.rend()) {
    std::string listed;
    for (size_t i = 0; i < members.size() && i < 8; ++i)
      listed += (i == 0 ? "\"" : ", \"") + members[i].first + "\"";
    MOE_THROW(InputError, where, ": column 1: the object has no key \"", key,
              "\" (its keys: ", listed.empty() ? "none" : listed,
              "); choose another with --jsonl-key");
  }
  std::string* text = std::get_if<std::string>(&last->second.data());
  MOE_CHECK(text, where, ": column 1: the value of \"", key, "\" is ", last->second.kind_name(),
            ", expected a string");
  return std::move(*text);
}

}  // namespace moe
