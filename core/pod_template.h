#pragma once
// Where a pod carries its Argo template (DESIGN.md section 3): the first container's
// ARGO_TEMPLATE env var, as Kubeflow reads it; else the `main` container's; else the init
// containers' (Argo >= 3.6 sets it only on `init`). Only `value` counts, never `valueFrom`.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kcache::core {

struct FoundTemplate {
  std::string argoTemplate;
  std::string containerName;  // where it was found, for logs and `cachectl explain`
};

// `pod` is a Pod object (metadata, spec). Tolerates any shape: a field of the wrong type is
// treated as absent, never as an error.
std::optional<FoundTemplate> findArgoTemplate(const nlohmann::json& pod);

}  // namespace kcache::core
