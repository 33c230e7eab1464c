#pragma once
// Where a pod carries its Argo template (docs/pod-contract.md, docs/argo-lines.md "Pod layout per
// line"): the first container's ARGO_TEMPLATE env var, as Kubeflow reads it; else the `main`
// container's; else the init containers' (Argo >= 3.6 sets it only on `init`); else the
// `supervisor` container's (Argo 4.1 init-less pods). Only `value` counts, never `valueFrom`.
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kcache::core {

struct FoundTemplate {
  std::string argoTemplate;   // the env value as it is ("offloaded" when `offloaded`)
  std::string containerName;  // where it was found, for logs and `cachectl explain`
  // The value is the literal "offloaded": Argo (>= 3.6) moved the template into the ConfigMap
  // named after the pod, key ARGO_TEMPLATE; the key must be computed from that ConfigMap's value.
  bool offloaded = false;
};

// `pod` is a Pod object (metadata, spec). Tolerates any shape: a field of the wrong type is
// treated as absent, never as an error.
std::optional<FoundTemplate> findArgoTemplate(const nlohmann::json& pod);

// Which Argo line built a pod, as far as its shape tells (docs/argo-lines.md, "Pod layout per
// line"). Used to choose how outputs are delivered on a hit and for logs and metrics; never for the
// key.
enum class ArgoLayout {
  kUnknown,               // no ARGO_TEMPLATE on main, init or supervisor
  kTemplateOnMain,        // Argo <= 3.5: ARGO_TEMPLATE on every container, `main` included
  kTemplateOnInit,        // Argo >= 3.6 (4.x legacy layout): only on `init`
  kTemplateOnSupervisor,  // Argo 4.1 init-less: on `supervisor`, no init containers
};
std::string_view toString(ArgoLayout layout);  // "argo<=3.5", "argo>=3.6", "argo4.1-initless", ...

struct PodLayout {
  ArgoLayout layout = ArgoLayout::kUnknown;
  // ARGO_WORKFLOW_UID on `wait`: the executor is Argo >= 3.5.2 (task results carry the
  // report-outputs-completed label).
  bool workflowUidOnWait = false;
};

// Pure and shape-tolerant like findArgoTemplate.
PodLayout detectArgoLayout(const nlohmann::json& pod);

}  // namespace kcache::core
