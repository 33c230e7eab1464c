#include "webhook/patch.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/pod_contract.h"

namespace kcache::webhook {

namespace {

using nlohmann::json;
namespace contract = core::contract;

using StringMap = std::vector<std::pair<std::string_view, std::string_view>>;

bool hasMember(const json& object, std::string_view name) {
  return object.is_object() && object.find(name) != object.end();
}

const json& memberOrNull(const json& object, std::string_view name) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(name);
  return it == object.end() ? kNull : *it;
}

void appendPointerToken(std::string& out, std::string_view token) {
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
}

// Writes the patch text directly. Members of every object are written in the order nlohmann's
// sorted maps dump them ("op" < "path" < "value"), so the text equals the dump of the same
// patch built as a tree (tests/webhook/server_answer_text_test.cpp checks it for every fixture).
class PatchWriter {
 public:
  PatchWriter() {
    out_.reserve(1024);
    out_ += '[';
  }

  // {"op":<kind>,"path":<path>  -- the caller closes the operation.
  void beginOperation(std::string_view kind, std::string_view path) {
    if (out_.size() > 1) out_ += ',';
    out_ += R"({"op":)";
    appendJsonString(out_, kind);
    out_ += R"(,"path":)";
    appendJsonString(out_, path);
  }
  // The same for <path>/<key> (the key escaped as a JSON Pointer token).
  void beginOperation(std::string_view kind, std::string_view path, std::string_view key) {
    pointer_.assign(path);
    pointer_ += '/';
    appendPointerToken(pointer_, key);
    beginOperation(kind, pointer_);
  }
  void operation(std::string_view kind, std::string_view path) {
    beginOperation(kind, path);
    out_ += '}';
  }
  void stringOperation(std::string_view kind, std::string_view path, std::string_view key,
                       std::string_view value) {
    beginOperation(kind, path, key);
    out_ += R"(,"value":)";
    appendJsonString(out_, value);
    out_ += '}';
  }
  // Adds each key of `entries` to metadata.<mapName>: one op per key into an existing map, or one
  // op creating the map when it does not exist yet.
  void addToMetadataMap(const json& pod, std::string_view mapName, StringMap entries) {
    std::string path = "/metadata/";
    path += mapName;
    const json& existing = memberOrNull(memberOrNull(pod, "metadata"), mapName);
    if (existing.is_object()) {
      for (const auto& [key, value] : entries) stringOperation("add", path, key, value);
      return;
    }
    // The decision only patches pods with a cache_enabled label, so metadata is an object here.
    // A map dumps its keys sorted, and a repeated key keeps its last value.
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    beginOperation("add", path);
    out_ += R"(,"value":{)";
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i + 1 < entries.size() && entries[i + 1].first == entries[i].first) continue;
      if (out_.back() != '{') out_ += ',';
      appendJsonString(out_, entries[i].first);
      out_ += ':';
      appendJsonString(out_, entries[i].second);
    }
    out_ += "}}";
  }
  void cachedStepContainers(const AdmissionConfig& config) {
    beginOperation("replace", "/spec/containers");
    // cachedStepContainer(config) as text; the message carries literal double quotes.
    out_ += R"(,"value":[{"command":["echo",)";
    std::string message;
    message.reserve(contract::kCachedStepMessage.size() + 2);
    message += '"';
    message += contract::kCachedStepMessage;
    message += '"';
    appendJsonString(out_, message);
    out_ += R"(],"image":)";
    appendJsonString(out_, config.cacheImage);
    out_ += R"(,"name":)";
    appendJsonString(out_, contract::kCachedStepContainerName);
    out_ += R"(,"resources":{"requests":{"cpu":)";
    appendJsonString(out_, contract::kCachedStepCpuRequest);
    out_ += R"(,"memory":)";
    appendJsonString(out_, contract::kCachedStepMemoryRequest);
    out_ += "}}}]}";
  }

  JsonPatch finish() && {
    out_ += ']';
    return JsonPatch(std::move(out_));
  }

 private:
  std::string out_;
  std::string pointer_;
};

}  // namespace

std::string escapePointerToken(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  appendPointerToken(out, token);
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

std::optional<JsonPatch> buildPatch(const json& pod, const AdmissionDecision& decision,
                                    const AdmissionConfig& config) {
  const bool changesPod = std::holds_alternative<Hit>(decision.outcome) ||
                          std::holds_alternative<Miss>(decision.outcome);
  if (!changesPod) return std::nullopt;
  PatchWriter patch;
  if (const auto* hit = std::get_if<Hit>(&decision.outcome)) {
    const json& spec = memberOrNull(pod, "spec");
    patch.cachedStepContainers(config);
    if (!config.keepNodeRestrictions) {
      if (hasMember(spec, "affinity")) patch.operation("remove", "/spec/affinity");
      if (hasMember(spec, "nodeSelector")) patch.operation("remove", "/spec/nodeSelector");
    }
    if (hasMember(spec, "initContainers")) patch.operation("remove", "/spec/initContainers");
    // The outputs annotation is restored in every mode: Argo <= 3.5 reads it, later lines ignore
    // it. Argo 3.5.11-3.5.15 read it only next to report-outputs-completed.
    StringMap annotations{{contract::kExecutionCacheKeyAnnotation, decision.key},
                          {contract::kArgoOutputsAnnotation, hit->outputs.argoOutputs}};
    if (decision.outputsDelivery == OutputsDelivery::kAnnotation) {
      annotations.emplace_back(contract::kArgoReportOutputsCompleted, contract::kTrue);
    }
    patch.addToMetadataMap(pod, "annotations", std::move(annotations));
    const std::string entryId = std::to_string(hit->entryId);
    patch.addToMetadataMap(pod, "labels",
                           {{contract::kCacheIdLabel, entryId},
                            {contract::kReusedFromCacheLabel, contract::kTrue},
                            {contract::kMetadataExecutionIdLabel, hit->outputs.metadataExecutionId},
                            {contract::kMetadataWrittenLabel, contract::kTrue}});
    return std::move(patch).finish();
  }
  // A miss: the key annotation and an empty cache_id label, as Kubeflow's own webhook adds.
  patch.addToMetadataMap(pod, "annotations",
                         {{contract::kExecutionCacheKeyAnnotation, decision.key}});
  patch.addToMetadataMap(pod, "labels", {{contract::kCacheIdLabel, ""}});
  return std::move(patch).finish();
}

}  // namespace kcache::webhook
