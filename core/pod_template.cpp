#include "core/pod_template.h"

#include "core/pod_contract.h"

namespace kcache::core {
namespace {

using nlohmann::json;

// The value of the first ARGO_TEMPLATE env var of a container, when it carries a literal value.
std::optional<std::string> templateOf(const json& container) {
  if (!container.is_object()) return std::nullopt;
  const auto env = container.find("env");
  if (env == container.end() || !env->is_array()) return std::nullopt;
  for (const json& variable : *env) {
    if (!variable.is_object()) continue;
    const auto name = variable.find("name");
    if (name == variable.end() || !name->is_string() || *name != contract::kArgoTemplateEnv)
      continue;
    const auto value = variable.find("value");
    if (value == variable.end() || !value->is_string()) return std::nullopt;
    return value->get<std::string>();
  }
  return std::nullopt;
}

std::string nameOf(const json& container) {
  const auto name = container.is_object() ? container.find("name") : container.end();
  return name != container.end() && name->is_string() ? name->get<std::string>() : std::string();
}

const json* arrayField(const json& object, std::string_view field) {
  if (!object.is_object()) return nullptr;
  const auto found = object.find(field);
  return found != object.end() && found->is_array() ? &*found : nullptr;
}

}  // namespace

std::optional<FoundTemplate> findArgoTemplate(const json& pod) {
  const json* spec = nullptr;
  if (pod.is_object()) {
    const auto found = pod.find("spec");
    if (found != pod.end() && found->is_object()) spec = &*found;
  }
  if (!spec) return std::nullopt;

  const json* containers = arrayField(*spec, "containers");
  if (containers && !containers->empty()) {
    // Kubeflow's rule first: the first container.
    if (auto found = templateOf(containers->front())) {
      return FoundTemplate{std::move(*found), nameOf(containers->front())};
    }
    for (const json& container : *containers) {
      if (nameOf(container) != contract::kArgoMainContainer) continue;
      if (auto found = templateOf(container))
        return FoundTemplate{std::move(*found), nameOf(container)};
    }
  }
  if (const json* initContainers = arrayField(*spec, "initContainers")) {
    for (const json& container : *initContainers) {
      if (auto found = templateOf(container))
        return FoundTemplate{std::move(*found), nameOf(container)};
    }
  }
  return std::nullopt;
}

}  // namespace kcache::core
