#pragma once
// Kubernetes label selectors as the fake API server understands them: existence (`key`, `!key`)
// and equality (`key=value`, `key==value`, `key!=value`) terms, comma meaning AND.
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kcache::fakekube {

class LabelSelector {
 public:
  // Throws std::invalid_argument on a term without a key (the server answers 400).
  explicit LabelSelector(const std::string& text);

  // Whether the object's metadata.labels satisfy every term (an empty selector matches all).
  bool matches(const nlohmann::json& object) const;

 private:
  enum class Op { kExists, kNotExists, kEquals, kNotEquals };
  struct Term {
    std::string key;
    Op op;
    std::string value;
  };
  std::vector<Term> terms_;
};

}  // namespace kcache::fakekube
