#include "webhook/decision.h"

#include <array>

#include "core/execution_key.h"
#include "core/offloaded_template.h"
#include "core/pod_contract.h"
#include "core/pod_template.h"

namespace kcache::webhook {

namespace {

using nlohmann::json;
namespace contract = core::contract;

constexpr std::string_view kTfxEntrypointSuffix =
    "tfx/orchestration/kubeflow/container_entrypoint.py";

// The member `name` of `object` when it is a string, else nullopt.
std::optional<std::string_view> stringMember(const json& object, std::string_view name) {
  if (!object.is_object()) return std::nullopt;
  const auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return std::nullopt;
  return std::string_view(it->get_ref<const std::string&>());
}

const json& memberOrNull(const json& object, std::string_view name) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(name);
  return it == object.end() ? kNull : *it;
}

// The keys planLookup needs for one template.
struct TemplateKeys {
  std::string inForce;    // the key of the scope in force
  std::string legacyKey;  // the template-only key when asked for, else ""
};

bool wantsLegacyKey(const AdmissionConfig& config) {
  return config.scope == store::CacheScope::kNamespace &&
         config.legacyCacheMode == store::LegacyCacheMode::kAudit;
}

// The keys of a template for a pod of `namespaceName`, remembering the last few per thread: the
// pods of one step carry the same template in the same namespace, and canonicalising and hashing
// it is a large part of an admission's CPU. The same inputs always give the same keys, so
// planLookup stays pure.
core::Expected<TemplateKeys, core::KeyError> executionKeysOf(std::string_view argoTemplate,
                                                             std::string_view namespaceName,
                                                             const AdmissionConfig& config) {
  const core::KeyBinding binding = store::keyBindingOf(config.scope);
  const bool withLegacyKey = wantsLegacyKey(config);
  struct Remembered {
    std::string argoTemplate;
    std::string namespaceName;
    core::KeyBinding binding;
    bool withLegacyKey;
    TemplateKeys keys;
  };
  constexpr std::size_t kRemembered = 8;
  constexpr std::size_t kLargestRemembered = 64 * 1024;  // bounds the memory per thread
  thread_local std::array<std::optional<Remembered>, kRemembered> recent;
  thread_local std::size_t next = 0;
  for (const auto& remembered : recent) {
    if (remembered && remembered->binding == binding &&
        remembered->withLegacyKey == withLegacyKey && remembered->namespaceName == namespaceName &&
        remembered->argoTemplate == argoTemplate) {
      return remembered->keys;
    }
  }
  auto canonical = core::CanonicalTemplate::of(argoTemplate);
  if (!canonical) return core::Unexpected<core::KeyError>{canonical.error()};
  TemplateKeys keys{canonical->key(binding, namespaceName).hex(),
                    withLegacyKey ? canonical->templateOnlyKey().hex() : std::string()};
  if (argoTemplate.size() <= kLargestRemembered) {
    recent[next] = Remembered{std::string(argoTemplate), std::string(namespaceName), binding,
                              withLegacyKey, keys};
    next = (next + 1) % kRemembered;
  }
  return keys;
}

bool isObjectOrNull(const json& value) {
  return value.is_object() || value.is_null();
}

// Kubeflow's isTFXPod: the SDK-type label names TFX, or exactly one of the pod's containers
// (Argo lays out `wait` and `main`) is `main` and runs TFX's Kubeflow entrypoint as the last
// element of its command. TFX caches on its own.
bool isTfxPod(const json& labels, const json& containers) {
  if (const auto sdk = stringMember(labels, contract::kPipelineSdkTypeLabel);
      sdk && sdk->find(contract::kTfxSdkMarker) != std::string_view::npos) {
    return true;
  }
  const json* main = nullptr;
  for (const json& container : containers) {
    if (stringMember(container, "name") != contract::kArgoMainContainer) continue;
    if (main != nullptr) return false;  // several `main` containers: Kubeflow says not TFX
    main = &container;
  }
  if (main == nullptr) return false;
  const json& command = memberOrNull(*main, "command");
  if (!command.is_array() || command.empty() || !command.back().is_string()) return false;
  const auto& last = command.back().get_ref<const std::string&>();
  return last.size() >= kTfxEntrypointSuffix.size() &&
         std::string_view(last).substr(last.size() - kTfxEntrypointSuffix.size()) ==
             kTfxEntrypointSuffix;
}

Skip skip(SkipReason reason, std::string detail = {}) {
  return Skip{reason, std::move(detail)};
}
Failure failure(ErrorReason reason, std::string detail) {
  return Failure{reason, std::move(detail)};
}

Failure keyFailure(const std::string& containerName, const core::KeyError& error) {
  return failure(ErrorReason::kBadTemplate,
                 "no execution key from ARGO_TEMPLATE of container " + containerName + ": " +
                     std::string(core::toString(error.kind)) + ": " + error.message);
}

}  // namespace

std::string_view toString(SkipReason reason) {
  switch (reason) {
    case SkipReason::kNotPodCreate:
      return "not_pod_create";
    case SkipReason::kSystemNamespace:
      return "system_namespace";
    case SkipReason::kCacheNotEnabled:
      return "cache_not_enabled";
    case SkipReason::kTfx:
      return "tfx";
    case SkipReason::kKfpV2:
      return "kfp_v2";
    case SkipReason::kNoArgoTemplate:
      return "no_argo_template";
    case SkipReason::kStalenessDisabled:
      return "staleness_disabled";
    case SkipReason::kTemplateOffloaded:
      return "template_offloaded";
    case SkipReason::kUntrustedCreator:
      return "untrusted_creator";
  }
  return "unknown";
}

std::string_view toString(ErrorReason reason) {
  switch (reason) {
    case ErrorReason::kUnexpectedObject:
      return "unexpected_object";
    case ErrorReason::kBadTemplate:
      return "bad_template";
    case ErrorReason::kStoreUnavailable:
      return "store_unavailable";
    case ErrorReason::kTemplateUnavailable:
      return "template_unavailable";
  }
  return "unknown";
}

std::string_view toString(ArgoOutputsMode mode) {
  switch (mode) {
    case ArgoOutputsMode::kAuto:
      return "auto";
    case ArgoOutputsMode::kAnnotation:
      return "annotation";
    case ArgoOutputsMode::kTaskResult:
      return "taskresult";
  }
  return "unknown";
}

std::string_view toString(OutputsDelivery delivery) {
  return delivery == OutputsDelivery::kTaskResult ? "taskresult" : "annotation";
}

OutputsDelivery chooseOutputsDelivery(const AdmissionConfig& config, core::ArgoLayout layout) {
  switch (config.argoOutputs) {
    case ArgoOutputsMode::kAnnotation:
      return OutputsDelivery::kAnnotation;
    case ArgoOutputsMode::kTaskResult:
      return OutputsDelivery::kTaskResult;
    case ArgoOutputsMode::kAuto:
      break;
  }
  // Argo <= 3.5 still reads the annotation; every later line reads only task results.
  if (!config.taskResultsAvailable || layout == core::ArgoLayout::kTemplateOnMain) {
    return OutputsDelivery::kAnnotation;
  }
  return OutputsDelivery::kTaskResult;
}

Plan planLookup(const AdmissionRequest& request, const AdmissionConfig& config) {
  if (request.resourceGroup != "" || request.resourceVersion != "v1" ||
      request.resourceName != "pods" || !request.subResource.empty() ||
      request.operation != "CREATE") {
    return skip(SkipReason::kNotPodCreate,
                request.operation + " " + request.resourceGroup + "/" + request.resourceVersion +
                    "/" + request.resourceName + (request.subResource.empty() ? "" : "/") +
                    request.subResource);
  }
  const json& pod = request.object;
  if (!pod.is_object())
    return failure(ErrorReason::kUnexpectedObject, "request.object is not an object");
  const json& metadata = memberOrNull(pod, "metadata");
  const json& spec = memberOrNull(pod, "spec");
  if (!isObjectOrNull(metadata) || !spec.is_object()) {
    return failure(ErrorReason::kUnexpectedObject, "request.object has no pod metadata and spec");
  }
  const json& labels = memberOrNull(metadata, "labels");
  const json& annotations = memberOrNull(metadata, "annotations");
  const json& containers = memberOrNull(spec, "containers");
  if (!isObjectOrNull(labels) || !isObjectOrNull(annotations) ||
      !(containers.is_array() || containers.is_null())) {
    return failure(ErrorReason::kUnexpectedObject,
                   "labels, annotations or containers of the pod have the wrong type");
  }

  std::string namespaceName = request.namespaceName;
  if (namespaceName.empty())
    namespaceName = std::string(stringMember(metadata, "namespace").value_or(""));
  if (namespaceName == "kube-system" || namespaceName == "kube-public") {
    return skip(SkipReason::kSystemNamespace, namespaceName);
  }
  if (stringMember(labels, contract::kCacheEnabledLabel) != contract::kTrue) {
    return skip(SkipReason::kCacheNotEnabled);
  }
  if (!config.trustedCreators.empty() && !config.trustedCreators.contains(request.userName)) {
    // The name is the caller's claim: shortened for the log line.
    constexpr std::size_t kShownBytes = 128;
    return skip(SkipReason::kUntrustedCreator,
                "created by \"" + request.userName.substr(0, kShownBytes) + "\"");
  }
  if (containers.empty()) return skip(SkipReason::kTfx, "the pod has no containers");
  if (isTfxPod(labels, containers)) return skip(SkipReason::kTfx);
  if (stringMember(annotations, contract::kV2ComponentAnnotation) == contract::kTrue) {
    return skip(SkipReason::kKfpV2);
  }
  auto found = core::findArgoTemplate(pod);
  if (!found) return skip(SkipReason::kNoArgoTemplate);
  if (found->offloaded && !config.readOffloadedTemplates) {
    return skip(SkipReason::kTemplateOffloaded,
                "its ARGO_TEMPLATE is in a ConfigMap and --read-offloaded-templates is off");
  }
  TemplateKeys keys;
  if (!found->offloaded) {
    auto computed = executionKeysOf(found->argoTemplate, namespaceName, config);
    if (!computed) return keyFailure(found->containerName, computed.error());
    keys = std::move(*computed);
  }
  const auto staleness =
      config.staleness.forPod(stringMember(annotations, contract::kMaxCacheStalenessAnnotation));
  if (staleness.seconds == 0) {
    return skip(SkipReason::kStalenessDisabled,
                "staleness 0 from " + std::string(core::toString(staleness.source)));
  }

  LookupPlan plan;
  plan.key = std::move(keys.inForce);
  plan.legacyKey = std::move(keys.legacyKey);
  plan.namespaceName = std::move(namespaceName);
  plan.podName = request.name.empty() ? std::string(stringMember(metadata, "name").value_or(""))
                                      : request.name;
  plan.templateContainer = std::move(found->containerName);
  plan.staleness = staleness;
  plan.layout = core::detectArgoLayout(pod).layout;
  plan.outputsDelivery = chooseOutputsDelivery(config, plan.layout);
  plan.templateOffloaded = found->offloaded;
  if (plan.templateOffloaded) plan.workflowUid = core::workflowOwnerUid(pod).value_or("");
  plan.mayRecord = config.scope != store::CacheScope::kCluster || !config.clusterScopeWriters ||
                   config.clusterScopeWriters->contains(plan.namespaceName);
  return plan;
}

std::string admissionStampOf(const AdmissionRequest& request, std::string_view key,
                             const AdmissionConfig& config) {
  const auto keys = config.admissionStamps ? config.admissionStamps->get() : nullptr;
  if (keys == nullptr) return "";
  const json& metadata = memberOrNull(request.object, "metadata");
  const std::string_view name = !request.name.empty()
                                    ? std::string_view(request.name)
                                    : stringMember(metadata, "name").value_or(std::string_view());
  const std::string_view generateName =
      stringMember(metadata, "generateName").value_or(std::string_view());
  const std::string_view namespaceName =
      !request.namespaceName.empty()
          ? std::string_view(request.namespaceName)
          : stringMember(metadata, "namespace").value_or(std::string_view());
  if (namespaceName.empty() || (name.empty() && generateName.empty())) return "";
  const auto staleness =
      stringMember(memberOrNull(metadata, "annotations"), contract::kMaxCacheStalenessAnnotation);
  core::StampSubject subject;
  subject.namespaceName = namespaceName;
  subject.nameIsPrefix = name.empty();
  subject.podName = name.empty() ? generateName : name;
  subject.executionKey = key;
  subject.recordedStaleness = config.staleness.forRecording(staleness);
  return keys->sign(subject);
}

bool mayReuseLegacyRow(const AdmissionConfig& config, const LookupPlan& plan) {
  return wantsLegacyKey(config) && !plan.legacyKey.empty();
}

std::variant<Failure, LookupPlan> withOffloadedTemplate(LookupPlan plan,
                                                        std::string_view argoTemplate,
                                                        const AdmissionConfig& config) {
  auto keys = executionKeysOf(argoTemplate, plan.namespaceName, config);
  if (!keys)
    return keyFailure(plan.templateContainer + " (offloaded to its ConfigMap)", keys.error());
  plan.key = std::move(keys->inForce);
  plan.legacyKey = std::move(keys->legacyKey);
  plan.templateOffloaded = false;
  return plan;
}

LookupOutcome interpretLookup(const std::optional<store::CacheEntry>& entry) {
  if (!entry) return Miss{};
  auto outputs = core::decodeExecutionOutput(entry->executionOutput);
  if (!outputs) {
    return Miss{"entry " + std::to_string(entry->id) + " has an unreadable ExecutionOutput"};
  }
  // Kubeflow records "" when a pod had no outputs annotation (its executor wrote a task result);
  // replayed, "" fails the node in Argo <= 3.5 (KFP#8942) and leaves a task result without
  // outputs. The step runs and is recorded again instead.
  if (outputs->argoOutputs.empty()) {
    return Miss{"entry " + std::to_string(entry->id) + " has no recorded outputs"};
  }
  Hit hit;
  hit.entryId = entry->id;
  hit.outputs = std::move(*outputs);
  hit.savedSeconds = entry->runDurationSeconds;
  return hit;
}

std::string_view outcomeLabel(const AdmissionDecision& decision) {
  return outcomeLabel(decision.outcome.index());
}

std::string_view outcomeLabel(std::size_t index) {
  switch (index) {
    case 0:
      return "skipped";
    case 1:
      return "error";
    case 2:
      return "miss";
    default:
      return "hit";
  }
}

}  // namespace kcache::webhook
