#include "watcher/recording_plan.h"

#include <charconv>
#include <ctime>

#include "core/execution_key.h"
#include "core/execution_output.h"
#include "core/offloaded_template.h"
#include "core/pod_contract.h"
#include "core/pod_template.h"

namespace kcache::watcher {
namespace contract = core::contract;
namespace {

const nlohmann::json* member(const nlohmann::json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::optional<std::string> stringMember(const nlohmann::json* object, std::string_view key) {
  if (object == nullptr) return std::nullopt;
  const nlohmann::json* value = member(*object, key);
  if (value == nullptr || !value->is_string()) return std::nullopt;
  return value->get<std::string>();
}

const nlohmann::json* metadataOf(const nlohmann::json& pod) {
  return member(pod, "metadata");
}

bool parseDigits(std::string_view text, size_t pos, size_t count, int& out) {
  if (pos + count > text.size()) return false;
  const char* first = text.data() + pos;
  auto [ptr, ec] = std::from_chars(first, first + count, out);
  return ec == std::errc() && ptr == first + count;
}

// Whether the pod's admission stamp verifies for it as it is now: bound to its name, or, for a
// pod created with generateName, to that prefix of its name (core/admission_stamp.h).
bool admissionStampVerifies(const core::StampKeyRing& keys, const nlohmann::json* metadata,
                            const std::string& stamp, const PodIdentity& pod, std::string_view key,
                            int64_t recordedStaleness) {
  core::StampSubject subject{pod.namespaceName, pod.name, false, key, recordedStaleness};
  if (keys.verifies(stamp, subject)) return true;
  const auto generateName = stringMember(metadata, "generateName");
  if (!generateName || generateName->empty() || !pod.name.starts_with(*generateName)) {
    return false;
  }
  subject.podName = *generateName;
  subject.nameIsPrefix = true;
  return keys.verifies(stamp, subject);
}

}  // namespace

std::string_view toString(SkipReason reason) {
  switch (reason) {
    case SkipReason::kNotAPod:
      return "not a pod";
    case SkipReason::kNotSucceeded:
      return "not succeeded with main exiting 0";
    case SkipReason::kAlreadyLabelled:
      return "cache_id already set";
    case SkipReason::kReplay:
      return "reused from cache";
    case SkipReason::kNoKey:
      return "no execution key annotation";
    case SkipReason::kInvalidKey:
      return "execution key annotation is not a key";
    case SkipReason::kNoTemplate:
      return "no ARGO_TEMPLATE to check the execution key against";
    case SkipReason::kBadTemplate:
      return "ARGO_TEMPLATE gives no execution key";
    case SkipReason::kKeyMismatch:
      return "the execution key annotation is not the key of the pod's template and namespace";
    case SkipReason::kTemplateOffloaded:
      return "ARGO_TEMPLATE is offloaded to a ConfigMap and --read-offloaded-templates is off";
    case SkipReason::kTemplateNotOwned:
      return "the offloaded template's ConfigMap is not the one the pod's Workflow owns";
    case SkipReason::kNamespaceNotWriter:
      return "the pod's namespace is not in --cluster-scope-writers, so it may not write the "
             "shared cache";
    case SkipReason::kNotCacheEnabled:
      return "the pod is not labelled cache_enabled=true, so kcache's webhook never tagged it";
    case SkipReason::kNoStamp:
      return "no admission stamp: kcache's webhook did not tag this pod for recording";
    case SkipReason::kBadStamp:
      return "the admission stamp does not match the pod's namespace, name, execution key and "
             "staleness (changed after admission, copied from another pod, or another secret)";
  }
  return "unknown";
}

std::optional<std::string_view> refusalLabel(SkipReason reason) {
  switch (reason) {
    case SkipReason::kNoKey:
      return "key_missing";
    case SkipReason::kInvalidKey:
      return "key_malformed";
    case SkipReason::kNoTemplate:
      return "template_missing";
    case SkipReason::kBadTemplate:
      return "template_invalid";
    case SkipReason::kKeyMismatch:
      return "key_mismatch";
    case SkipReason::kTemplateOffloaded:
      return "template_offloaded";
    case SkipReason::kTemplateNotOwned:
      return "template_not_owned";
    // tenancy (issue 13)
    case SkipReason::kNamespaceNotWriter:
      return "namespace_not_writer";
    case SkipReason::kNotCacheEnabled:
      return "not_cache_enabled";
    case SkipReason::kNoStamp:
      return "stamp_missing";
    case SkipReason::kBadStamp:
      return "stamp_invalid";
    default:
      return std::nullopt;
  }
}

PodIdentity identityOf(const nlohmann::json& pod) {
  const nlohmann::json* metadata = metadataOf(pod);
  return PodIdentity{stringMember(metadata, "namespace").value_or(""),
                     stringMember(metadata, "name").value_or(""),
                     stringMember(metadata, "uid").value_or("")};
}

std::string trackingId(const PodIdentity& pod) {
  return pod.uid.empty() ? pod.namespaceName + "/" + pod.name : pod.uid;
}

std::string nodeIdOf(const nlohmann::json& pod) {
  const nlohmann::json* metadata = metadataOf(pod);
  const nlohmann::json* annotations = metadata ? member(*metadata, "annotations") : nullptr;
  return stringMember(annotations, contract::kArgoNodeIdAnnotation).value_or("");
}

std::optional<std::string> cacheIdLabel(const nlohmann::json& pod) {
  const nlohmann::json* metadata = metadataOf(pod);
  const nlohmann::json* labels = metadata ? member(*metadata, "labels") : nullptr;
  return stringMember(labels, contract::kCacheIdLabel);
}

core::Expected<RecordingPlan, SkipReason> planPodRecording(const nlohmann::json& pod,
                                                           const RecordingRules& rules,
                                                           int64_t nowInSec) {
  PodIdentity identity = identityOf(pod);
  if (identity.name.empty() || identity.namespaceName.empty()) {
    return core::Unexpected(SkipReason::kNotAPod);
  }
  const nlohmann::json* metadata = metadataOf(pod);
  const nlohmann::json* labels = member(*metadata, "labels");
  const nlohmann::json* annotations = member(*metadata, "annotations");
  const nlohmann::json* status = member(pod, "status");

  if (stringMember(status, "phase") != contract::kPhaseSucceeded || mainExitCode(pod) != 0) {
    return core::Unexpected(SkipReason::kNotSucceeded);
  }
  if (!stringMember(labels, contract::kCacheIdLabel).value_or("").empty()) {
    return core::Unexpected(SkipReason::kAlreadyLabelled);
  }
  if (!stringMember(labels, contract::kReusedFromCacheLabel).value_or("").empty()) {
    return core::Unexpected(SkipReason::kReplay);
  }
  if (rules.scope == store::CacheScope::kCluster && rules.clusterScopeWriters &&
      !rules.clusterScopeWriters->contains(identity.namespaceName)) {
    return core::Unexpected(SkipReason::kNamespaceNotWriter);
  }
  const auto key = stringMember(annotations, contract::kExecutionCacheKeyAnnotation);
  if (!key) return core::Unexpected(SkipReason::kNoKey);
  if (!core::ExecutionKey::fromHex(*key)) return core::Unexpected(SkipReason::kInvalidKey);
  const auto found = core::findArgoTemplate(pod);
  if (!found) return core::Unexpected(SkipReason::kNoTemplate);
  if (found->offloaded && !rules.readOffloadedTemplates) {
    return core::Unexpected(SkipReason::kTemplateOffloaded);
  }
  if (!found->offloaded) {
    const auto recomputed = core::computeExecutionKey(
        found->argoTemplate, store::keyBindingOf(rules.scope), identity.namespaceName);
    if (!recomputed) return core::Unexpected(SkipReason::kBadTemplate);
    if (recomputed->hex() != *key) return core::Unexpected(SkipReason::kKeyMismatch);
  }
  const auto stalenessAnnotation =
      stringMember(annotations, contract::kMaxCacheStalenessAnnotation);
  const int64_t recordedStaleness = rules.staleness.forRecording(
      stalenessAnnotation ? std::optional<std::string_view>(*stalenessAnnotation) : std::nullopt);
  if (rules.admissionStamps) {
    if (stringMember(labels, contract::kCacheEnabledLabel) != contract::kTrue) {
      return core::Unexpected(SkipReason::kNotCacheEnabled);
    }
    const auto stamp = stringMember(annotations, contract::kAdmissionStampAnnotation);
    if (!stamp) return core::Unexpected(SkipReason::kNoStamp);
    if (!admissionStampVerifies(*rules.admissionStamps, metadata, *stamp, identity, *key,
                                recordedStaleness)) {
      return core::Unexpected(SkipReason::kBadStamp);
    }
  }

  RecordingPlan plan;
  plan.pod = std::move(identity);
  plan.nodeId = nodeIdOf(pod);
  plan.metadataExecutionId = stringMember(labels, contract::kMetadataExecutionIdLabel).value_or("");
  store::NewEntry& entry = plan.entry;
  entry.key = *key;
  entry.namespaceName = plan.pod.namespaceName;
  entry.podName = plan.pod.name;
  entry.executionTemplate = found->argoTemplate;
  plan.templateOffloaded = found->offloaded;
  if (plan.templateOffloaded) plan.workflowUid = core::workflowOwnerUid(pod).value_or("");
  entry.maxCacheStaleness = recordedStaleness;
  entry.runDurationSeconds = runDurationSeconds(pod);
  entry.recordedAtInSec = nowInSec;
  return plan;
}

core::Expected<RecordingPlan, SkipReason> verifyOffloadedKey(RecordingPlan plan,
                                                             std::string_view argoTemplate,
                                                             store::CacheScope scope) {
  const auto recomputed =
      core::computeExecutionKey(argoTemplate, store::keyBindingOf(scope), plan.pod.namespaceName);
  if (!recomputed) return core::Unexpected(SkipReason::kBadTemplate);
  if (recomputed->hex() != plan.entry.key) return core::Unexpected(SkipReason::kKeyMismatch);
  plan.entry.executionTemplate = std::string(argoTemplate);
  plan.templateOffloaded = false;
  return plan;
}

std::optional<std::string> annotationOutputs(const nlohmann::json& pod) {
  const nlohmann::json* metadata = metadataOf(pod);
  const nlohmann::json* annotations = metadata ? member(*metadata, "annotations") : nullptr;
  auto outputs = stringMember(annotations, contract::kArgoOutputsAnnotation);
  if (!outputs) return std::nullopt;
  // 3.5.2+ executors that fell back to the annotation mark it final separately.
  const auto completed = stringMember(annotations, contract::kArgoReportOutputsCompleted);
  if (completed && *completed != contract::kTrue) return std::nullopt;
  return outputs;
}

void setOutputs(RecordingPlan& plan, const std::string& argoOutputs) {
  plan.entry.executionOutput =
      core::encodeExecutionOutput(core::StepOutputs{argoOutputs, plan.metadataExecutionId});
}

core::Expected<RecordingPlan, SkipReason> planRecording(const nlohmann::json& pod,
                                                        const RecordingRules& rules,
                                                        int64_t nowInSec) {
  auto plan = planPodRecording(pod, rules, nowInSec);
  if (plan) setOutputs(*plan, annotationOutputs(pod).value_or(""));
  return plan;
}

std::optional<int64_t> mainExitCode(const nlohmann::json& pod) {
  const nlohmann::json* status = member(pod, "status");
  const nlohmann::json* statuses = status ? member(*status, "containerStatuses") : nullptr;
  if (statuses == nullptr || !statuses->is_array()) return std::nullopt;
  for (const auto& containerStatus : *statuses) {
    if (stringMember(&containerStatus, "name") != contract::kArgoMainContainer) continue;
    const nlohmann::json* state = member(containerStatus, "state");
    const nlohmann::json* terminated = state ? member(*state, "terminated") : nullptr;
    const nlohmann::json* exitCode = terminated ? member(*terminated, "exitCode") : nullptr;
    if (exitCode == nullptr || !exitCode->is_number_integer()) return std::nullopt;
    return exitCode->get<int64_t>();
  }
  return std::nullopt;
}

int64_t runDurationSeconds(const nlohmann::json& pod) {
  const nlohmann::json* status = member(pod, "status");
  const nlohmann::json* statuses = status ? member(*status, "containerStatuses") : nullptr;
  if (statuses == nullptr || !statuses->is_array()) return 0;
  auto durationOf = [](const nlohmann::json& containerStatus) -> std::optional<int64_t> {
    const nlohmann::json* state = member(containerStatus, "state");
    const nlohmann::json* terminated = state ? member(*state, "terminated") : nullptr;
    const auto started = stringMember(terminated, "startedAt");
    const auto finished = stringMember(terminated, "finishedAt");
    if (!started || !finished) return std::nullopt;
    const auto start = parseRfc3339(*started);
    const auto end = parseRfc3339(*finished);
    if (!start || !end || *end < *start) return std::nullopt;
    return *end - *start;
  };
  for (const auto& containerStatus : *statuses) {
    if (stringMember(&containerStatus, "name") == contract::kArgoMainContainer) {
      if (auto seconds = durationOf(containerStatus)) return *seconds;
    }
  }
  for (const auto& containerStatus : *statuses) {
    if (auto seconds = durationOf(containerStatus)) return *seconds;
  }
  return 0;
}

std::optional<int64_t> parseRfc3339(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
  int year, month, day, hour, minute, second;
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  if (!parseDigits(text, 0, 4, year) || !parseDigits(text, 5, 2, month) ||
      !parseDigits(text, 8, 2, day) || !parseDigits(text, 11, 2, hour) ||
      !parseDigits(text, 14, 2, minute) || !parseDigits(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    const size_t digitsStart = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == digitsStart) return std::nullopt;
  }
  int64_t offsetSeconds = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z') && pos + 1 == text.size()) {
    // UTC
  } else if (pos + 6 == text.size() && (text[pos] == '+' || text[pos] == '-') &&
             text[pos + 3] == ':') {
    int offsetHours, offsetMinutes;
    if (!parseDigits(text, pos + 1, 2, offsetHours) ||
        !parseDigits(text, pos + 4, 2, offsetMinutes)) {
      return std::nullopt;
    }
    offsetSeconds = (offsetHours * 3600 + offsetMinutes * 60) * (text[pos] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(timegm(&tm)) - offsetSeconds;
}

nlohmann::json cacheIdPatch(const PodIdentity& pod, int64_t entryId) {
  nlohmann::json patch = {
      {"metadata",
       {{"labels", {{std::string(contract::kCacheIdLabel), std::to_string(entryId)}}}}}};
  if (!pod.uid.empty()) patch["metadata"]["uid"] = pod.uid;
  return patch;
}

}  // namespace kcache::watcher
