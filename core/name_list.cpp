#include "core/name_list.h"

namespace kcache::core {
namespace {

std::string_view trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

}  // namespace

NameList NameList::parse(std::string_view commaSeparated) {
  NameList list;
  while (!commaSeparated.empty()) {
    const auto comma = commaSeparated.find(',');
    const std::string_view item = trimmed(commaSeparated.substr(0, comma));
    if (item == "*") {
      list.everyName_ = true;
    } else if (!item.empty()) {
      list.names_.emplace(item);
    }
    if (comma == std::string_view::npos) break;
    commaSeparated.remove_prefix(comma + 1);
  }
  return list;
}

bool NameList::contains(std::string_view name) const {
  return everyName_ || names_.find(name) != names_.end();
}

std::string NameList::describe() const {
  if (everyName_) return "*";
  std::string text;
  for (const auto& name : names_) {
    if (!text.empty()) text += ',';
    text += name;
  }
  return text;
}

}  // namespace kcache::core
