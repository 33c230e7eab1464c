#pragma once
// The JSON Patch (RFC 6902) for a decision: only single label and annotation keys are added, so
// nothing another webhook set is lost; a whole map is added only when the pod has none.
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "webhook/decision.h"

namespace kcache::webhook {

// A JSON Pointer reference token: "~" as "~0", "/" as "~1" (RFC 6901).
std::string escapePointerToken(std::string_view token);

// The container a cache hit leaves in the pod: busybox echoing the cache message.
nlohmann::json cachedStepContainer(const AdmissionConfig& config);

// nullopt for Skip and Failure (the pod is let through untouched).
std::optional<JsonPatch> buildPatch(const nlohmann::json& pod, const AdmissionDecision& decision,
                                    const AdmissionConfig& config);

}  // namespace kcache::webhook
