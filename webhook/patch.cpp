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

const json& nullJson() {
  static const json kNull;
  return kNull;
}

const json& memberOrNull(const json& object, std::string_view name) {
  if (!object.is_object()) return nullJson();
  const auto it = object.find(name);
  return it == object.end() ? nullJson() : *it;
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
  void cachedStepContainers(const json& pod, const AdmissionConfig& config) {
    beginOperation("replace", "/spec/containers");
    out_ += R"(,"value":[)";
    out_ += cachedStepContainer(pod, config).dump(-1, ' ', false, json::error_handler_t::replace);
    out_ += "]}";
  }

  JsonPatch finish() && {
    out_ += ']';
    return JsonPatch(std::move(out_));
  }

 private:
  std::string out_;
  std::string pointer_;
};

bool isTrue(const json& value) {
  return value.is_boolean() && value.get<bool>();
}

bool isString(const json& value, std::string_view expected) {
  return value.is_string() && value.get_ref<const std::string&>() == expected;
}

// The step's own container (Kubeflow v1 steps always run in `main`), or null.
const json* mainContainer(const json& pod) {
  const json& containers = memberOrNull(memberOrNull(pod, "spec"), "containers");
  if (!containers.is_array()) return nullptr;
  for (const json& container : containers) {
    if (isString(memberOrNull(container, "name"), contract::kCachedStepContainerName)) {
      return &container;
    }
  }
  return nullptr;
}

// busybox's image runs as root; a pod that demands a non-root user without naming one gets this
// one (nobody) for its echo, which needs no file it could not read.
constexpr int64_t kEchoUserId = 65534;

// The echo container's securityContext (cachedStepContainer in patch.h); null for none.
json echoSecurityContext(const json& pod, const json* main) {
  const json& spec = memberOrNull(pod, "spec");
  const json& podContext = memberOrNull(spec, "securityContext");
  const json& own = main != nullptr ? memberOrNull(*main, "securityContext") : nullJson();
  json context;
  if (own.is_object()) {
    context = own;
  } else if (isString(memberOrNull(memberOrNull(spec, "os"), "name"), "windows")) {
    return json();  // these Linux fields are invalid on a Windows pod
  } else {
    context = json::object();
    context["allowPrivilegeEscalation"] = false;
    context["capabilities"] = json::object({{"drop", json::array({"ALL"})}});
    context["seccompProfile"] = json::object({{"type", "RuntimeDefault"}});
  }
  const json& containerNonRoot = memberOrNull(context, "runAsNonRoot");
  const bool nonRoot = containerNonRoot.is_null() ? isTrue(memberOrNull(podContext, "runAsNonRoot"))
                                                  : isTrue(containerNonRoot);
  const bool namesUser = !memberOrNull(context, "runAsUser").is_null() ||
                         !memberOrNull(podContext, "runAsUser").is_null();
  if (nonRoot && !namesUser) context["runAsUser"] = kEchoUserId;
  return context;
}

// Room for the echo's one log line.
constexpr std::string_view kEchoEphemeralStorage = "16Mi";

// The echo container's resources (cachedStepContainer in patch.h).
json echoResources(const json* main) {
  const json& resources = main != nullptr ? memberOrNull(*main, "resources") : nullJson();
  json amounts = json::object();
  amounts["cpu"] = contract::kCachedStepCpuRequest;
  amounts["memory"] = contract::kCachedStepMemoryRequest;
  // A quota on ephemeral storage requires a limit for it too; only pods that declare it meet one.
  for (const char* part : {"requests", "limits"}) {
    if (hasMember(memberOrNull(resources, part), "ephemeral-storage")) {
      amounts["ephemeral-storage"] = kEchoEphemeralStorage;
    }
  }
  json out = json::object();
  out["requests"] = amounts;
  out["limits"] = std::move(amounts);
  return out;
}

// The annotations a hit sets.
StringMap hitAnnotations(const AdmissionDecision& decision, const Hit& hit, bool withOutputs) {
  StringMap annotations{{contract::kExecutionCacheKeyAnnotation, decision.key}};
  if (withOutputs)
    annotations.emplace_back(contract::kArgoOutputsAnnotation, hit.outputs.argoOutputs);
  if (decision.outputsDelivery == OutputsDelivery::kAnnotation) {
    annotations.emplace_back(contract::kArgoReportOutputsCompleted, contract::kTrue);
  }
  return annotations;
}

// What Kubernetes counts against kAnnotationsSizeLimitBytes once `added` is set on the pod.
std::size_t annotationBytesWith(const json& pod, const StringMap& added) {
  std::size_t total = 0;
  for (const auto& [key, value] : added) total += key.size() + value.size();
  const json& existing = memberOrNull(memberOrNull(pod, "metadata"), "annotations");
  if (!existing.is_object()) return total;
  for (auto it = existing.begin(); it != existing.end(); ++it) {
    const bool replaced = std::any_of(added.begin(), added.end(),
                                      [&](const auto& entry) { return entry.first == it.key(); });
    if (replaced) continue;
    total += it.key().size();
    if (it->is_string()) total += it->get_ref<const std::string&>().size();
  }
  return total;
}

}  // namespace

std::string escapePointerToken(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  appendPointerToken(out, token);
  return out;
}

json cachedStepContainer(const json& pod, const AdmissionConfig& config) {
  // The message carries literal double quotes, byte-identical to Kubeflow's cached pods.
  // (Appended piece by piece: GCC 12 with -fsanitize reports a false -Wrestrict on `"\"" + s`.)
  std::string message;
  message.reserve(contract::kCachedStepMessage.size() + 2);
  message += '"';
  message += contract::kCachedStepMessage;
  message += '"';
  const json* main = mainContainer(pod);
  json container = json::object();
  container["name"] = contract::kCachedStepContainerName;
  container["image"] = config.cacheImage;
  container["command"] = json::array({"echo", std::move(message)});
  container["resources"] = echoResources(main);
  if (json context = echoSecurityContext(pod, main); !context.is_null()) {
    container["securityContext"] = std::move(context);
  }
  return container;
}

HitAnnotationsFit hitAnnotationsFit(const json& pod, const AdmissionDecision& decision) {
  const auto* hit = std::get_if<Hit>(&decision.outcome);
  if (hit == nullptr) return HitAnnotationsFit::kWithOutputs;
  if (annotationBytesWith(pod, hitAnnotations(decision, *hit, true)) <=
      kAnnotationsSizeLimitBytes) {
    return HitAnnotationsFit::kWithOutputs;
  }
  // Argo reads the outputs annotation only when it is how they are delivered (Argo <= 3.5).
  if (decision.outputsDelivery == OutputsDelivery::kTaskResult &&
      annotationBytesWith(pod, hitAnnotations(decision, *hit, false)) <=
          kAnnotationsSizeLimitBytes) {
    return HitAnnotationsFit::kWithoutOutputs;
  }
  return HitAnnotationsFit::kTooLarge;
}

std::optional<JsonPatch> buildPatch(const json& pod, const AdmissionDecision& decision,
                                    const AdmissionConfig& config) {
  const bool changesPod = std::holds_alternative<Hit>(decision.outcome) ||
                          std::holds_alternative<Miss>(decision.outcome);
  if (!changesPod) return std::nullopt;
  PatchWriter patch;
  const auto* hit = std::get_if<Hit>(&decision.outcome);
  const HitAnnotationsFit fit = hitAnnotationsFit(pod, decision);
  if (hit != nullptr && fit != HitAnnotationsFit::kTooLarge) {
    const json& spec = memberOrNull(pod, "spec");
    patch.cachedStepContainers(pod, config);
    if (!config.keepNodeRestrictions) {
      if (hasMember(spec, "affinity")) patch.operation("remove", "/spec/affinity");
      if (hasMember(spec, "nodeSelector")) patch.operation("remove", "/spec/nodeSelector");
    }
    if (hasMember(spec, "initContainers")) patch.operation("remove", "/spec/initContainers");
    // The outputs annotation is restored in every mode where it fits: Argo <= 3.5 reads it, later
    // lines ignore it. Argo 3.5.11-3.5.15 read it only next to report-outputs-completed.
    patch.addToMetadataMap(pod, "annotations",
                           hitAnnotations(decision, *hit, fit == HitAnnotationsFit::kWithOutputs));
    const std::string entryId = std::to_string(hit->entryId);
    patch.addToMetadataMap(pod, "labels",
                           {{contract::kCacheIdLabel, entryId},
                            {contract::kReusedFromCacheLabel, contract::kTrue},
                            {contract::kMetadataExecutionIdLabel, hit->outputs.metadataExecutionId},
                            {contract::kMetadataWrittenLabel, contract::kTrue}});
    return std::move(patch).finish();
  }
  // A miss (or a hit too large to admit): the key annotation and an empty cache_id label, as
  // Kubeflow's own webhook adds; nothing for a pod that may not be recorded.
  if (!decision.tagForRecording) return std::nullopt;
  StringMap annotations{{contract::kExecutionCacheKeyAnnotation, decision.key}};
  if (!decision.admissionStamp.empty()) {
    annotations.emplace_back(contract::kAdmissionStampAnnotation, decision.admissionStamp);
  }
  patch.addToMetadataMap(pod, "annotations", annotations);
  patch.addToMetadataMap(pod, "labels", {{contract::kCacheIdLabel, ""}});
  return std::move(patch).finish();
}

}  // namespace kcache::webhook
