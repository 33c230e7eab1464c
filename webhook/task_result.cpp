#include "webhook/task_result.h"

#include <spdlog/spdlog.h>

#include "core/offloaded_template.h"
#include "core/pod_contract.h"

namespace kcache::webhook {

namespace {

using nlohmann::json;
namespace contract = core::contract;

const json& memberOrNull(const json& object, std::string_view name) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(name);
  return it == object.end() ? kNull : *it;
}

std::optional<std::string> stringMember(const json& object, std::string_view name) {
  const json& member = memberOrNull(object, name);
  if (!member.is_string()) return std::nullopt;
  return member.get<std::string>();
}

// ARGO_NODE_ID of the first container (init containers included) that carries it as a value.
std::optional<std::string> nodeIdFromEnv(const json& spec) {
  for (const char* list : {"containers", "initContainers"}) {
    const json& containers = memberOrNull(spec, list);
    if (!containers.is_array()) continue;
    for (const json& container : containers) {
      const json& env = memberOrNull(container, "env");
      if (!env.is_array()) continue;
      for (const json& variable : env) {
        if (stringMember(variable, "name") != contract::kArgoNodeIdEnv) continue;
        if (auto value = stringMember(variable, "value"); value && !value->empty()) return value;
      }
    }
  }
  return std::nullopt;
}

std::string workflowUidFromOwners(const json& metadata, const std::string& workflowName) {
  const json& owners = memberOrNull(metadata, "ownerReferences");
  if (!owners.is_array()) return {};
  for (const json& owner : owners) {
    if (stringMember(owner, "kind") == contract::kArgoWorkflowKind &&
        stringMember(owner, "name") == workflowName) {
      return stringMember(owner, "uid").value_or("");
    }
  }
  return {};
}

std::string describe(const TaskResultTarget& target) {
  return "task result " + target.namespaceName + "/" + target.nodeId;
}

}  // namespace

TaskResultTarget taskResultTarget(const json& pod, const std::string& namespaceName) {
  const json& metadata = memberOrNull(pod, "metadata");
  const json& labels = memberOrNull(metadata, "labels");
  TaskResultTarget target;
  target.namespaceName = namespaceName;
  target.workflowName = stringMember(labels, contract::kArgoWorkflowLabel).value_or("");
  if (target.workflowName.empty()) {
    throw DeliveryError("the pod has no " + std::string(contract::kArgoWorkflowLabel) +
                        " label, so its workflow is unknown");
  }
  auto nodeId =
      stringMember(memberOrNull(metadata, "annotations"), contract::kArgoNodeIdAnnotation);
  if (!nodeId || nodeId->empty()) nodeId = nodeIdFromEnv(memberOrNull(pod, "spec"));
  if (!nodeId) {
    throw DeliveryError("the pod has neither a " + std::string(contract::kArgoNodeIdAnnotation) +
                        " annotation nor an " + std::string(contract::kArgoNodeIdEnv) +
                        " env value, so its task result has no name");
  }
  target.nodeId = std::move(*nodeId);
  target.workflowUid = workflowUidFromOwners(metadata, target.workflowName);
  target.instanceId = stringMember(labels, contract::kArgoControllerInstanceIdLabel);
  return target;
}

json replayedOutputs(std::string_view argoOutputs) {
  json outputs = json::parse(argoOutputs, nullptr, /*allow_exceptions=*/false);
  if (!outputs.is_object()) {
    throw DeliveryError(argoOutputs.empty()
                            ? std::string("the cache entry has no outputs to replay")
                            : std::string("the cached outputs are not a JSON object"));
  }
  outputs.erase("exitCode");
  if (auto artifacts = outputs.find("artifacts");
      artifacts != outputs.end() && artifacts->is_array()) {
    for (json& artifact : *artifacts) {
      if (artifact.is_object()) artifact["artifactGC"] = {{"strategy", "Never"}};
    }
  }
  return outputs;
}

json buildTaskResult(const TaskResultTarget& target, json outputs, int64_t entryId) {
  json labels = json::object();
  labels[std::string(contract::kArgoWorkflowLabel)] = target.workflowName;
  if (target.instanceId) {
    labels[std::string(contract::kArgoControllerInstanceIdLabel)] = *target.instanceId;
  }
  labels[std::string(contract::kArgoReportOutputsCompleted)] = contract::kTrue;
  labels[std::string(contract::kReplayedFromLabel)] = std::to_string(entryId);

  json owner = json::object();
  owner["apiVersion"] = contract::kArgoApiVersion;
  owner["kind"] = contract::kArgoWorkflowKind;
  owner["name"] = target.workflowName;
  owner["uid"] = target.workflowUid;

  json metadata = json::object();
  metadata["name"] = target.nodeId;
  metadata["namespace"] = target.namespaceName;
  metadata["labels"] = std::move(labels);
  metadata["ownerReferences"] = json::array({std::move(owner)});

  json taskResult = json::object();
  taskResult["apiVersion"] = contract::kArgoApiVersion;
  taskResult["kind"] = contract::kArgoTaskResultKind;
  taskResult["metadata"] = std::move(metadata);
  taskResult["outputs"] = std::move(outputs);
  return taskResult;
}

bool isTaskResultAsBuilt(const json& existing, const json& wanted) {
  const json& metadata = memberOrNull(existing, "metadata");
  const json& wantedMetadata = memberOrNull(wanted, "metadata");
  return memberOrNull(existing, "outputs") == memberOrNull(wanted, "outputs") &&
         memberOrNull(metadata, "labels") == memberOrNull(wantedMetadata, "labels") &&
         memberOrNull(metadata, "ownerReferences") ==
             memberOrNull(wantedMetadata, "ownerReferences");
}

TaskResultDelivery::TaskResultDelivery(kube::KubeApi* api, core::MetricsRegistry& metrics)
    : api_(api),
      created_(metrics.counter("kcache_task_results_total",
                               "WorkflowTaskResults for cache hits, by result.",
                               {{"result", "created"}})),
      alreadyPresent_(metrics.counter("kcache_task_results_total",
                                      "WorkflowTaskResults for cache hits, by result.",
                                      {{"result", "already_present"}})),
      failed_(metrics.counter("kcache_task_results_total",
                              "WorkflowTaskResults for cache hits, by result.",
                              {{"result", "failed"}})),
      templatesRead_(metrics.counter("kcache_offloaded_template_reads_total",
                                     "Reads of templates Argo offloaded to a ConfigMap, by result.",
                                     {{"result", "read"}})),
      templatesFailed_(metrics.counter(
          "kcache_offloaded_template_reads_total",
          "Reads of templates Argo offloaded to a ConfigMap, by result.", {{"result", "failed"}})) {
}

void TaskResultDelivery::deliver(const AdmissionRequest& request, const LookupPlan& plan,
                                 const Hit& hit) {
  if (plan.outputsDelivery != OutputsDelivery::kTaskResult) return;
  const std::string pod = plan.namespaceName + "/" + plan.podName;
  try {
    // sideEffects: NoneOnDryRun: a dry run creates nothing, so it cannot be rewritten either.
    if (request.dryRun) throw DeliveryError("dry run: no task result is created");
    if (api_ == nullptr) {
      throw DeliveryError("no Kubernetes API client (no cluster configuration was found)");
    }
    auto target = taskResultTarget(request.object, plan.namespaceName);
    auto outputs = replayedOutputs(hit.outputs.argoOutputs);
    target.workflowUid = workflowUid(target);
    createOrAdopt(target, buildTaskResult(target, std::move(outputs), hit.entryId));
  } catch (const DeliveryError& error) {
    failed_.inc();
    throw DeliveryError("task result for pod " + pod + " (entry " + std::to_string(hit.entryId) +
                        "): " + error.what());
  }
}

std::string TaskResultDelivery::workflowUid(const TaskResultTarget& target) {
  if (!target.workflowUid.empty()) return target.workflowUid;
  // The pod should carry its Workflow as owner; without it, ask for the Workflow itself.
  const std::string workflow = target.namespaceName + "/" + target.workflowName;
  try {
    const auto found =
        api_->get(kube::resources::kWorkflows, target.namespaceName, target.workflowName);
    if (!found) throw DeliveryError("workflow " + workflow + " not found");
    auto uid = stringMember(memberOrNull(*found, "metadata"), "uid");
    if (!uid || uid->empty()) throw DeliveryError("workflow " + workflow + " has no uid");
    return *uid;
  } catch (const kube::KubeApiError& error) {
    throw DeliveryError("reading workflow " + workflow + " for its uid failed: " + error.what());
  }
}

void TaskResultDelivery::createOrAdopt(const TaskResultTarget& target, const json& taskResult) {
  try {
    api_->create(kube::resources::kWorkflowTaskResults, target.namespaceName, taskResult);
    created_.inc();
    return;
  } catch (const kube::KubeApiError& error) {
    if (error.status() != 409) {
      throw DeliveryError("creating " + describe(target) + " failed: " + error.what());
    }
  } catch (const std::exception& error) {
    throw DeliveryError("creating " + describe(target) + " failed: " + error.what());
  }
  // 409: the pod may have been admitted before (the controller retries creates), and then the task
  // result is the one we would create now; anything else there (the executor's own, another
  // entry's replay, a forgery carrying our label) is not adopted: the step runs.
  std::optional<json> existing;
  try {
    existing =
        api_->get(kube::resources::kWorkflowTaskResults, target.namespaceName, target.nodeId);
  } catch (const std::exception& error) {
    throw DeliveryError(describe(target) + " exists and reading it failed: " + error.what());
  }
  if (!existing) throw DeliveryError(describe(target) + " exists but was gone when read");
  const std::string entry =
      stringMember(memberOrNull(memberOrNull(taskResult, "metadata"), "labels"),
                   contract::kReplayedFromLabel)
          .value_or("?");
  if (!isTaskResultAsBuilt(*existing, taskResult)) {
    throw DeliveryError(describe(target) +
                        " already exists and is not what kcache creates for entry " + entry +
                        " (outputs, owner or labels differ)");
  }
  alreadyPresent_.inc();
  spdlog::debug("{} already exists for entry {} (admission repeated)", describe(target), entry);
}

std::string TaskResultDelivery::readOffloadedTemplate(const std::string& namespaceName,
                                                      const std::string& podName,
                                                      const std::string& workflowUid) {
  const std::string configMap = "config map " + namespaceName + "/" + podName;
  try {
    if (api_ == nullptr) {
      throw DeliveryError("the template of pod " + namespaceName + "/" + podName +
                          " is offloaded and no Kubernetes API client is configured to read it");
    }
    std::optional<json> found;
    try {
      found = api_->get(kube::resources::kConfigMaps, namespaceName, podName);
    } catch (const std::exception& error) {
      throw DeliveryError("reading the offloaded template from " + configMap +
                          " failed: " + error.what());
    }
    if (!found) throw DeliveryError("the offloaded template's " + configMap + " does not exist");
    auto value = core::offloadedTemplateOf(*found, workflowUid);
    if (!value) {
      // Not Argo's: whoever may create ConfigMaps in the namespace could have made it.
      throw DeliveryError(configMap + " is not used: " + value.error());
    }
    templatesRead_.inc();
    return std::move(value).value();
  } catch (const DeliveryError&) {
    templatesFailed_.inc();
    throw;
  }
}

}  // namespace kcache::webhook
