// What the generic visitors of the config structs share (the contract is in config/schema.h).
//
// Decisions:
// - A key without a Range is visited with NoRule, so every visitor writes one four-argument
//   field() and FieldVisitor supplies the three-argument form.
// - Visitors that only read values walk a const Config through the non-const visit().
#pragma once

#include "config/run_config.h"

namespace moe {

struct NoRule {};

template <class Derived>
struct FieldVisitor {
  template <class T>
  void field(const char* key, T& value, const char* doc) {
    static_cast<Derived*>(this)->field(key, value, NoRule{}, doc);
  }
};

template <class V>
void visit_const(const Config& config, V& visitor) {
  const_cast<Config&>(config).visit(visitor);
}

}  // namespace moe
