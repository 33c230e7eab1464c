#include "tests/fakekube/label_selector.h"

#include <string_view>

namespace kcache::fakekube {
namespace {

std::string trimmed(std::string_view text) {
  const size_t first = text.find_first_not_of(' ');
  if (first == std::string_view::npos) return "";
  const size_t last = text.find_last_not_of(' ');
  return std::string(text.substr(first, last - first + 1));
}

}  // namespace

LabelSelector::LabelSelector(const std::string& text) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string term = trimmed(std::string_view(text).substr(start, end - start));
    start = end + 1;
    if (term.empty()) continue;
    Term parsed;
    if (size_t pos = term.find("!="); pos != std::string::npos) {
      parsed = {trimmed(term.substr(0, pos)), Op::kNotEquals, trimmed(term.substr(pos + 2))};
    } else if (pos = term.find("=="); pos != std::string::npos) {
      parsed = {trimmed(term.substr(0, pos)), Op::kEquals, trimmed(term.substr(pos + 2))};
    } else if (pos = term.find('='); pos != std::string::npos) {
      parsed = {trimmed(term.substr(0, pos)), Op::kEquals, trimmed(term.substr(pos + 1))};
    } else if (term[0] == '!') {
      parsed = {trimmed(term.substr(1)), Op::kNotExists, ""};
    } else {
      parsed = {term, Op::kExists, ""};
    }
    if (parsed.key.empty() || parsed.key.find_first_of(" !=()") != std::string::npos) {
      throw std::invalid_argument("unable to parse requirement: \"" + term + "\"");
    }
    terms_.push_back(std::move(parsed));
  }
}

bool LabelSelector::matches(const nlohmann::json& object) const {
  static const nlohmann::json kNoLabels = nlohmann::json::object();
  const nlohmann::json* labels = &kNoLabels;
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object() &&
      object["metadata"].contains("labels") && object["metadata"]["labels"].is_object()) {
    labels = &object["metadata"]["labels"];
  }
  for (const Term& term : terms_) {
    const auto it = labels->find(term.key);
    const bool exists = it != labels->end() && it->is_string();
    const std::string* value = exists ? it->get_ptr<const std::string*>() : nullptr;
    switch (term.op) {
      case Op::kExists:
        if (!exists) return false;
        break;
      case Op::kNotExists:
        if (exists) return false;
        break;
      case Op::kEquals:
        if (!exists || *value != term.value) return false;
        break;
      case Op::kNotEquals:
        if (exists && *value == term.value) return false;
        break;
    }
  }
  return true;
}

}  // namespace kcache::fakekube
