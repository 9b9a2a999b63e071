// Config::validate: every value against its rule (the same checks as reading a file), then the
// constraints between keys (config/validation.h).
#include "config/rules.h"
#include "config/validation.h"
#include "config/visitor.h"

namespace moe {
namespace {

class Checker : public FieldVisitor<Checker> {
 public:
  using FieldVisitor::field;
  explicit Checker(const std::string& where) : where_(where) {}

  template <class S>
  void section(const char* name, S& s, const char*) {
    section_ = name;
    s.visit(*this);
  }
  template <class T, class Rule>
  void field(const char* key, T& value, const Rule& rule, const char*) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      check_rule(section_ + "." + key, static_cast<int64_t>(value), rule, where_);
    } else {
      check_rule(section_ + "." + key, value, rule, where_);
    }
  }

 private:
  const std::string& where_;
  std::string section_;
};

}  // namespace

void Config::validate(const std::string& where) const {
  Checker checker(where);
  visit_const(*this, checker);
  validate_model_shape(*this, where);
  validate_rope_scaling(*this, where);
  validate_bts(*this, where);  // before the layout: a BTS run refuses TP and EP outright
  validate_parallel_layout(*this, where);
  validate_training(*this, where);
}

}  // namespace moe
