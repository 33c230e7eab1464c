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

// One JSON Patch operation. Built member by member: nlohmann's initializer lists copy every
// nested value, which showed in the hit path's profile.
json operation(std::string_view kind, std::string path) {
  json op = json::object();
  op["op"] = kind;
  op["path"] = std::move(path);
  return op;
}
json operation(std::string_view kind, std::string path, json value) {
  json op = operation(kind, std::move(path));
  op["value"] = std::move(value);
  return op;
}

// Adds each key of `entries` to metadata.<mapName>: one op per key into an existing map, or one op
// creating the map (or the whole metadata) when it does not exist yet.
void addToMetadataMap(json& patch, const json& pod, std::string_view mapName,
                      const StringMap& entries) {
  const json& metadata = memberOrNull(pod, "metadata");
  const json& existing = memberOrNull(metadata, mapName);
  if (existing.is_object()) {
    for (const auto& [key, value] : entries) {
      patch.push_back(operation(
          "add", "/metadata/" + std::string(mapName) + "/" + escapePointerToken(key), value));
    }
    return;
  }
  // The decision only patches pods with a cache_enabled label, so metadata is an object here.
  json map = json::object();
  for (const auto& [key, value] : entries) map[std::string(key)] = value;
  patch.push_back(operation("add", "/metadata/" + std::string(mapName), std::move(map)));
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
  // (Appended piece by piece: GCC 12 with -fsanitize reports a false -Wrestrict on `"\"" + s`.)
  std::string message;
  message.reserve(contract::kCachedStepMessage.size() + 2);
  message += '"';
  message += contract::kCachedStepMessage;
  message += '"';
  json requests = json::object();
  requests["cpu"] = contract::kCachedStepCpuRequest;
  requests["memory"] = contract::kCachedStepMemoryRequest;
  json container = json::object();
  container["name"] = contract::kCachedStepContainerName;
  container["image"] = config.cacheImage;
  container["command"] = json::array();
  container["command"].push_back("echo");
  container["command"].push_back(message);
  container["resources"] = json::object();
  container["resources"]["requests"] = std::move(requests);
  return container;
}

std::optional<json> buildPatch(const json& pod, const AdmissionDecision& decision,
                               const AdmissionConfig& config) {
  json patch = json::array();
  if (const auto* hit = std::get_if<Hit>(&decision.outcome)) {
    const json& spec = memberOrNull(pod, "spec");
    json containers = json::array();
    containers.push_back(cachedStepContainer(config));
    patch.push_back(operation("replace", "/spec/containers", std::move(containers)));
    if (!config.keepNodeRestrictions) {
      if (hasMember(spec, "affinity")) patch.push_back(operation("remove", "/spec/affinity"));
      if (hasMember(spec, "nodeSelector")) {
        patch.push_back(operation("remove", "/spec/nodeSelector"));
      }
    }
    if (hasMember(spec, "initContainers")) {
      patch.push_back(operation("remove", "/spec/initContainers"));
    }
    // The outputs annotation is restored in every mode: Argo <= 3.5 reads it, later lines ignore
    // it. Argo 3.5.11-3.5.15 read it only next to report-outputs-completed.
    StringMap annotations{{contract::kExecutionCacheKeyAnnotation, decision.key},
                          {contract::kArgoOutputsAnnotation, hit->outputs.argoOutputs}};
    if (decision.outputsDelivery == OutputsDelivery::kAnnotation) {
      annotations.emplace_back(contract::kArgoReportOutputsCompleted, std::string(contract::kTrue));
    }
    addToMetadataMap(patch, pod, "annotations", annotations);
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
