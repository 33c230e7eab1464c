#pragma once
// The template Argo (>= 3.6) offloads to a ConfigMap when ARGO_TEMPLATE is over 128 KiB: the
// ConfigMap is named after the pod, lives in its namespace, holds the template under key
// ARGO_TEMPLATE and is owned (controller ownerReference) by the pod's Workflow. Anyone who may
// create ConfigMaps in the namespace can create one of that name, so kcache uses one only when it
// is owned by the Workflow that owns the pod. Pure: the caller fetches both objects.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/expected.h"

namespace kcache::core {

// The uid of the pod's owning Workflow (ownerReference of kind Workflow in argoproj.io), nullopt
// when the pod has none. Shape-tolerant.
std::optional<std::string> workflowOwnerUid(const nlohmann::json& pod);

// The ARGO_TEMPLATE value of `configMap` when an ownerReference of kind Workflow in argoproj.io
// names `workflowUid` (never empty); otherwise an error message for the log.
Expected<std::string, std::string> offloadedTemplateOf(const nlohmann::json& configMap,
                                                       const std::string& workflowUid);

}  // namespace kcache::core
