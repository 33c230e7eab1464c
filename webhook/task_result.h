#pragma once
// Cached outputs delivered as the WorkflowTaskResult Argo's executor would have written
// (docs/argo-lines.md, "The hit, step by step", step 5): the object is built by pure functions, and
// TaskResultDelivery creates it through the Kubernetes API before the hit is answered. Whatever
// fails, the hit turns into a miss and the step runs: a rewritten pod without its task result would
// leave the node without outputs (Argo 3.6.0-3.6.10, 3.7.0) or hanging (3.6.11+, 3.7.1+, 4.x).
#include <atomic>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "kube/kube_api.h"
#include "webhook/output_delivery.h"

namespace kcache::webhook {

// Why outputs could not be delivered; the message says for which pod and what happened.
class DeliveryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Who a task result is for, read from the pod at admission (docs/argo-lines.md, "The hit, step by
// step", step 1).
struct TaskResultTarget {
  std::string namespaceName;
  std::string nodeId;        // the task result's name
  std::string workflowName;  // label workflows.argoproj.io/workflow
  std::string workflowUid;   // of the Workflow ownerReference; "" when the pod has none
  std::optional<std::string> instanceId;  // label workflows.argoproj.io/controller-instanceid
};

// The node id is annotation workflows.argoproj.io/node-id, else env ARGO_NODE_ID of a container.
// Throws DeliveryError when the pod has no workflow label or no node id.
TaskResultTarget taskResultTarget(const nlohmann::json& pod, const std::string& namespaceName);

// The outputs of a task result from the cached workflows.argoproj.io/outputs string: verbatim,
// except that `exitCode` is dropped (the echo pod reports its own) and every artifact gets
// `artifactGC: {strategy: Never}`, so that no consumer workflow's artifact GC deletes the
// artifact the original run stored and others reuse. Throws DeliveryError when the string is not
// a JSON object.
nlohmann::json replayedOutputs(std::string_view argoOutputs);

// The WorkflowTaskResult for `target` (with a workflowUid) replaying cache entry `entryId`.
nlohmann::json buildTaskResult(const TaskResultTarget& target, nlohmann::json outputs,
                               int64_t entryId);

// Whether `existing` is exactly the task result kcache would create, `wanted` (buildTaskResult):
// the same outputs, owner references and labels. Only such a one is adopted when creating gets a
// 409 (the same pod admitted again). Anyone who may create task results in the namespace (every
// Argo executor) could pre-create one carrying kcache's replay label and forged outputs; the
// marker alone proves nothing, so anything else makes the step run.
bool isTaskResultAsBuilt(const nlohmann::json& existing, const nlohmann::json& wanted);

// Creates the task result for hits whose plan says so, and reads offloaded templates. Uses its own
// API client (the webhook's, with a short request timeout), never the watcher's.
class TaskResultDelivery : public OutputDelivery {
 public:
  // `api` may be null (no cluster configuration): every task-result delivery and offloaded
  // template read then fails, so such pods run.
  TaskResultDelivery(kube::KubeApi* api, core::MetricsRegistry& metrics);

  void deliver(const AdmissionRequest& request, const LookupPlan& plan, const Hit& hit) override;
  std::string readOffloadedTemplate(const std::string& namespaceName, const std::string& podName,
                                    const std::string& workflowUid) override;

 private:
  void createOrAdopt(const TaskResultTarget& target, const nlohmann::json& taskResult);
  std::string workflowUid(const TaskResultTarget& target);

  kube::KubeApi* api_;
  core::Counter& created_;
  core::Counter& alreadyPresent_;
  core::Counter& failed_;
  core::Counter& templatesRead_;
  core::Counter& templatesFailed_;
};

}  // namespace kcache::webhook
