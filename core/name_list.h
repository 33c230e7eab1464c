#pragma once
// A list of names given by an operator as one comma-separated flag value (namespaces, user
// names): "a, b,c". "*" stands for every name, and is only ever a deliberate choice.
#include <set>
#include <string>
#include <string_view>

namespace kcache::core {

class NameList {
 public:
  NameList() = default;
  // Items are trimmed of spaces; empty items are ignored, so "" is the empty list.
  static NameList parse(std::string_view commaSeparated);

  bool empty() const { return !everyName_ && names_.empty(); }
  bool allowsEveryName() const { return everyName_; }
  bool contains(std::string_view name) const;
  // The list as given back, for logs: "*" or "a,b".
  std::string describe() const;

 private:
  bool everyName_ = false;
  std::set<std::string, std::less<>> names_;
};

}  // namespace kcache::core
