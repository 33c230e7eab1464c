#include "core/pod_template.h"

#include "core/pod_contract.h"

namespace kcache::core {
namespace {

using nlohmann::json;

// The value of the first env var `variableName` of a container, when it carries a literal value.
std::optional<std::string> envValueOf(const json& container, std::string_view variableName) {
  if (!container.is_object()) return std::nullopt;
  const auto env = container.find("env");
  if (env == container.end() || !env->is_array()) return std::nullopt;
  for (const json& variable : *env) {
    if (!variable.is_object()) continue;
    const auto name = variable.find("name");
    if (name == variable.end() || !name->is_string() || *name != variableName) continue;
    const auto value = variable.find("value");
    if (value == variable.end() || !value->is_string()) return std::nullopt;
    return value->get<std::string>();
  }
  return std::nullopt;
}

std::optional<std::string> templateOf(const json& container) {
  return envValueOf(container, contract::kArgoTemplateEnv);
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

const json* specOf(const json& pod) {
  if (!pod.is_object()) return nullptr;
  const auto found = pod.find("spec");
  return found != pod.end() && found->is_object() ? &*found : nullptr;
}

FoundTemplate found(std::string value, std::string containerName) {
  const bool offloaded = value == contract::kArgoTemplateOffloaded;
  return FoundTemplate{std::move(value), std::move(containerName), offloaded};
}

// Whether a container named `name` in `containers` (may be null) has a literal `variable`.
bool namedContainerHas(const json* containers, std::string_view name, std::string_view variable) {
  if (!containers) return false;
  for (const json& container : *containers) {
    if (nameOf(container) == name && envValueOf(container, variable)) return true;
  }
  return false;
}

}  // namespace

std::optional<FoundTemplate> findArgoTemplate(const json& pod) {
  const json* spec = specOf(pod);
  if (!spec) return std::nullopt;

  const json* containers = arrayField(*spec, "containers");
  if (containers && !containers->empty()) {
    // Kubeflow's rule first: the first container.
    if (auto value = templateOf(containers->front())) {
      return found(std::move(*value), nameOf(containers->front()));
    }
    for (const json& container : *containers) {
      if (nameOf(container) != contract::kArgoMainContainer) continue;
      if (auto value = templateOf(container)) return found(std::move(*value), nameOf(container));
    }
  }
  if (const json* initContainers = arrayField(*spec, "initContainers")) {
    for (const json& container : *initContainers) {
      if (auto value = templateOf(container)) return found(std::move(*value), nameOf(container));
    }
  }
  if (containers) {
    for (const json& container : *containers) {
      if (nameOf(container) != contract::kArgoSupervisorContainer) continue;
      if (auto value = templateOf(container)) return found(std::move(*value), nameOf(container));
    }
  }
  return std::nullopt;
}

std::string_view toString(ArgoLayout layout) {
  switch (layout) {
    case ArgoLayout::kUnknown:
      return "unknown";
    case ArgoLayout::kTemplateOnMain:
      return "argo<=3.5";
    case ArgoLayout::kTemplateOnInit:
      return "argo>=3.6";
    case ArgoLayout::kTemplateOnSupervisor:
      return "argo4.1-initless";
  }
  return "unknown";
}

PodLayout detectArgoLayout(const json& pod) {
  PodLayout result;
  const json* spec = specOf(pod);
  if (!spec) return result;
  const json* containers = arrayField(*spec, "containers");
  const json* initContainers = arrayField(*spec, "initContainers");
  const auto templateEnv = contract::kArgoTemplateEnv;
  if (namedContainerHas(containers, contract::kArgoMainContainer, templateEnv)) {
    result.layout = ArgoLayout::kTemplateOnMain;
  } else if (namedContainerHas(containers, contract::kArgoSupervisorContainer, templateEnv)) {
    result.layout = ArgoLayout::kTemplateOnSupervisor;
  } else if (namedContainerHas(initContainers, contract::kArgoInitContainer, templateEnv)) {
    result.layout = ArgoLayout::kTemplateOnInit;
  }
  result.workflowUidOnWait =
      namedContainerHas(containers, contract::kArgoWaitContainer, contract::kArgoWorkflowUidEnv);
  return result;
}

}  // namespace kcache::core
