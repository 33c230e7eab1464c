#include "webhook/patch.h"

#include <utility>
#include <vector>

#include "core/pod_contract.h"

namespace kcache::webhook {

namespace {

using nlohmann::json;
namespace contract = core::contract;

using StringMap = std::vector<std::pair<std::string_view, std::string>>;

bool hasMember(const json& object, std::string_view name) {
  return object.is_object() && object.find(name) != object.end();
}

const json& memberOrNull(const json& object, std::string_view name) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(name);
  return it == object.end() ? kNull : *it;
}

// Adds each key of `entries` to metadata.<mapName>: one op per key into an existing map, or one op
// creating the map (or the whole metadata) when it does not exist yet.
void addToMetadataMap(json& patch, const json& pod, std::string_view mapName,
                      const StringMap& entries) {
  const json& metadata = memberOrNull(pod, "metadata");
  const json& existing = memberOrNull(metadata, mapName);
  if (existing.is_object()) {
    for (const auto& [key, value] : entries) {
      patch.push_back(
          {{"op", "add"},
           {"path", "/metadata/" + std::string(mapName) + "/" + escapePointerToken(key)},
           {"value", value}});
    }
    return;
  }
  // The decision only patches pods with a cache_enabled label, so metadata is an object here.
  json map = json::object();
  for (const auto& [key, value] : entries) map[std::string(key)] = value;
  patch.push_back({{"op", "add"}, {"path", "/metadata/" + std::string(mapName)}, {"value", map}});
}

}  // namespace

std::string escapePointerToken(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

json cachedStepContainer(const AdmissionConfig& config) {
  // The message carries literal double quotes, byte-identical to Kubeflow's cached pods.
  const std::string message = "\"" + std::string(contract::kCachedStepMessage) + "\"";
  return json{{"name", contract::kCachedStepContainerName},
              {"image", config.cacheImage},
              {"command", json::array({"echo", message})},
              {"resources",
               {{"requests",
                 {{"cpu", contract::kCachedStepCpuRequest},
                  {"memory", contract::kCachedStepMemoryRequest}}}}}};
}

std::optional<json> buildPatch(const json& pod, const AdmissionDecision& decision,
                               const AdmissionConfig& config) {
  json patch = json::array();
  if (const auto* hit = std::get_if<Hit>(&decision.outcome)) {
    const json& spec = memberOrNull(pod, "spec");
    patch.push_back({{"op", "replace"},
                     {"path", "/spec/containers"},
                     {"value", json::array({cachedStepContainer(config)})}});
    if (!config.keepNodeRestrictions) {
      if (hasMember(spec, "affinity"))
        patch.push_back({{"op", "remove"}, {"path", "/spec/affinity"}});
      if (hasMember(spec, "nodeSelector")) {
        patch.push_back({{"op", "remove"}, {"path", "/spec/nodeSelector"}});
      }
    }
    if (hasMember(spec, "initContainers")) {
      patch.push_back({{"op", "remove"}, {"path", "/spec/initContainers"}});
    }
    addToMetadataMap(patch, pod, "annotations",
                     {{contract::kExecutionCacheKeyAnnotation, decision.key},
                      {contract::kArgoOutputsAnnotation, hit->outputs.argoOutputs}});
    addToMetadataMap(patch, pod, "labels",
                     {{contract::kCacheIdLabel, std::to_string(hit->entryId)},
                      {contract::kReusedFromCacheLabel, std::string(contract::kTrue)},
                      {contract::kMetadataExecutionIdLabel, hit->outputs.metadataExecutionId},
                      {contract::kMetadataWrittenLabel, std::string(contract::kTrue)}});
    return patch;
  }
  if (std::holds_alternative<Miss>(decision.outcome)) {
    addToMetadataMap(patch, pod, "annotations",
                     {{contract::kExecutionCacheKeyAnnotation, decision.key}});
    addToMetadataMap(patch, pod, "labels", {{contract::kCacheIdLabel, std::string()}});
    return patch;
  }
  return std::nullopt;
}

}  // namespace kcache::webhook
