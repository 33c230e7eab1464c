#include "watcher/task_result.h"

#include "core/pod_contract.h"
#include "watcher/recording_plan.h"

namespace kcache::watcher {
namespace contract = core::contract;

std::optional<TaskResultView> readTaskResult(const nlohmann::json& taskResult) {
  const PodIdentity identity = identityOf(taskResult);
  if (identity.name.empty() || identity.namespaceName.empty()) return std::nullopt;
  TaskResultView view;
  view.namespaceName = identity.namespaceName;
  view.nodeId = identity.name;
  view.trackingId = trackingId(identity);

  const auto metadata = taskResult.find("metadata");
  const auto labels = metadata->find("labels");
  if (labels != metadata->end() && labels->is_object()) {
    const auto label = labels->find(contract::kArgoReportOutputsCompleted);
    if (label != labels->end()) {
      view.report = label->is_string() && *label == contract::kTrue ? ReportState::kCompleted
                                                                    : ReportState::kInProgress;
    }
  }
  const auto outputs = taskResult.find("outputs");
  if (outputs != taskResult.end() && outputs->is_object()) {
    nlohmann::json recorded = *outputs;
    recorded.erase("exitCode");
    view.outputs = recorded.dump();
  }
  return view;
}

bool isFinal(const TaskResultView& taskResult) {
  switch (taskResult.report) {
    case ReportState::kCompleted:
      return true;
    case ReportState::kInProgress:
      return false;
    case ReportState::kUnlabelled:
      return taskResult.outputs.has_value();
  }
  return false;
}

std::string recordedOutputs(const TaskResultView& taskResult) {
  return taskResult.outputs.value_or("{}");
}

std::string taskResultSelector() {
  std::string selector(contract::kArgoWorkflowLabel);
  selector += ",!";
  selector += contract::kReplayedFromLabel;
  return selector;
}

}  // namespace kcache::watcher
